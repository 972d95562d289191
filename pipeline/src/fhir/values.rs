//! FHIR values to event field values, shaped like the HL7 v2 ones.

use super::path::Node;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone};
use serde_json::{json, Value};

/// A FHIR instant, dateTime or date. Without an offset (a date, or a time without zone)
/// it is local time in `tz`; a partial date is the start of its period.
pub fn parse_timestamp(s: &str, tz: chrono_tz::Tz) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| naive_date(s)?.and_hms_opt(0, 0, 0))?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.fixed_offset())
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` as the first day of the period.
fn naive_date(s: &str) -> Option<NaiveDate> {
    let ok = |len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    let year = |y: &str| y.parse::<i32>().ok().filter(|y| *y >= 1000);
    match s.len() {
        4 if ok(4) => NaiveDate::from_ymd_opt(year(s)?, 1, 1),
        7 if ok(7) => NaiveDate::from_ymd_opt(year(&s[..4])?, s[5..7].parse().ok()?, 1),
        10 if ok(10) => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().filter(|d| {
            use chrono::Datelike;
            d.year() >= 1000
        }),
        _ => None,
    }
}

/// RFC 3339 text, as HL7 timestamps are written (offset `+00:00`, not `Z`).
pub fn to_rfc3339(s: &str, tz: chrono_tz::Tz) -> Option<String> {
    parse_timestamp(s, tz).map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

/// A date (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`) as written; a dateTime gives its date part.
pub fn date(s: &str) -> Option<Value> {
    let s = s.trim();
    let d = s.get(..10.min(s.len()))?;
    naive_date(d)?;
    if s.len() > 10 && s.as_bytes()[10] != b'T' {
        return None;
    }
    Some(json!(d))
}

fn text(v: &Value, key: &str) -> Value {
    match v.get(key) {
        Some(Value::String(s)) if !s.is_empty() => json!(s),
        _ => Value::Null,
    }
}

/// `{code, display, system}` from a CodeableConcept (its first coding; display falls
/// back to its text), a Coding, or a bare code.
pub fn coded(v: &Value) -> Value {
    if let Some(s) = v.as_str() {
        return json!({"code": s, "display": null, "system": null});
    }
    let coding = v
        .get("coding")
        .and_then(Value::as_array)
        .and_then(|c| c.first());
    match coding {
        Some(c) => {
            let mut display = text(c, "display");
            if display.is_null() {
                display = text(v, "text");
            }
            json!({"code": text(c, "code"), "display": display, "system": text(c, "system")})
        }
        None if v.get("coding").is_some() || v.get("text").is_some() => {
            json!({"code": null, "display": text(v, "text"), "system": null})
        }
        None => {
            json!({"code": text(v, "code"), "display": text(v, "display"), "system": text(v, "system")})
        }
    }
}

/// The `value[x]` type of a node: its choice suffix, else guessed from the JSON.
fn kind<'a>(n: &Node<'a>) -> &'a str {
    if let Some(c) = n.choice {
        // Choice suffixes capitalise primitive type names: valueDateTime, valueString.
        return match c {
            "String" => "string",
            "Integer" => "integer",
            "Decimal" => "decimal",
            "Boolean" => "boolean",
            "DateTime" => "dateTime",
            "Instant" => "instant",
            "Time" => "time",
            "Date" => "dateTime",
            _ => c,
        };
    }
    match n.value {
        Value::Number(_) => "decimal",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        v if v.get("coding").is_some() => "CodeableConcept",
        v if v.get("low").is_some() || v.get("high").is_some() => "Range",
        v if v.get("numerator").is_some() => "Ratio",
        v if v.get("value").is_some() => "Quantity",
        _ => "",
    }
}

/// The HL7 v2 value type (OBX-2) matching a `value[x]`.
pub fn value_type(n: &Node<'_>) -> &'static str {
    match kind(n) {
        "Quantity" if n.value.get("comparator").is_some() => "SN",
        "Quantity" | "integer" | "decimal" => "NM",
        "Range" | "Ratio" => "SN",
        "CodeableConcept" | "Coding" => "CWE",
        "dateTime" | "instant" => "DTM",
        "time" => "TM",
        "Period" => "DR",
        "Attachment" => "ED",
        _ => "ST",
    }
}

/// A `value[x]` shaped like HL7's typed OBX-5 (see `FieldType::ObservationValue`).
pub fn observation_value(n: &Node<'_>, tz: chrono_tz::Tz) -> Result<Value, &'static str> {
    let v = n.value;
    let num = |q: Option<&Value>| -> Result<Value, &'static str> {
        match q.and_then(|q| q.get("value")) {
            None => Ok(Value::Null),
            Some(x) if x.is_number() => Ok(x.clone()),
            Some(_) => Err("a Quantity with a numeric value"),
        }
    };
    Ok(match kind(n) {
        "Quantity" if v.get("comparator").is_some() => json!({
            "comparator": text(v, "comparator"), "value": num(Some(v))?,
            "separator": null, "value2": null,
        }),
        "Quantity" => num(Some(v))?,
        "integer" | "decimal" => v.clone(),
        "Range" => json!({
            "comparator": null, "value": num(v.get("low"))?,
            "separator": "-", "value2": num(v.get("high"))?,
        }),
        "Ratio" => json!({
            "comparator": null, "value": num(v.get("numerator"))?,
            "separator": ":", "value2": num(v.get("denominator"))?,
        }),
        "CodeableConcept" | "Coding" => coded(v),
        "dateTime" | "instant" => {
            let s = v.as_str().ok_or("a FHIR dateTime")?;
            json!(to_rfc3339(s, tz).ok_or("a FHIR dateTime")?)
        }
        _ => match v {
            Value::String(_) => v.clone(),
            Value::Bool(b) => json!(b.to_string()),
            _ => Value::Null,
        },
    })
}
