//! FHIR R4 as a path language: [`crate::fhir::path`] (a FHIRPath subset) over a resource,
//! rules keyed by resource type, `for_each` over the elements a path finds; values typed
//! by [`crate::fhir::values`].
//!
//! A Bundle maps every entry: entries of types without a (holding) rule, the
//! MessageHeader of a message Bundle and entries without a resource are skipped; one
//! failing entry fails the whole Bundle, named by index and type.

use super::kinds::FieldType;
use super::language::{Keys, Language, Report, SyntaxError, Typed, EVENT_KEYS};
use super::rules::{Filter, Mapped, RuleSet};
use crate::fhir::path::{looks_like_type, node_text, Env, FhirPath, Index, Node};
use crate::fhir::values;
use crate::reason::{Reason, Rejection};
use chrono::{DateTime, FixedOffset};
use chrono_tz::Tz;
use serde_json::{json, Value};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The FHIR path language, with the tenant's identifier systems by name (`%mrn`).
#[derive(Debug, Clone, Default)]
pub struct Fhir {
    identifiers: BTreeMap<String, Vec<String>>,
}

impl Fhir {
    /// The language with these identifier systems (`fhir.identifiers` in tenant.yaml).
    pub fn new(identifiers: BTreeMap<String, Vec<String>>) -> Self {
        Fhir { identifiers }
    }
}

/// One resource being mapped (a Bundle entry, or the resource posted).
pub struct Target<'a> {
    resource: &'a Value,
    resource_type: &'a str,
    full_url: Option<&'a str>,
    index: &'a Index<'a>,
}

/// Where FHIR paths are evaluated: an element of the resource (the resource itself, or
/// the current element of a `for_each`) and what `%resource` and `%previous` mean there.
#[derive(Clone, Copy)]
pub struct At<'a> {
    ctx: &'a Value,
    env: Env<'a>,
    target: &'a Target<'a>,
    /// The index of the current `for_each` element.
    position: Option<usize>,
}

impl Language for Fhir {
    type Path = FhirPath;
    type Scope<'a> = At<'a>;
    type Value<'a> = Node<'a>;
    type ForEachSpec = Spanned<String>;
    type ForEach = FhirPath;

    const KEYS: Keys = Keys {
        file: "resources",
        rule: &["resource", "when", "events", "ignore", "reason"],
        event: &EVENT_KEYS,
        types: &FieldType::NAMES,
    };
    const DEFAULT_TIME: Option<&'static str> = None;
    const TIMESTAMP: &'static str = "a FHIR dateTime";
    const DATE: &'static str = "a FHIR date";

    fn parse_path(&self, expr: &str) -> Result<FhirPath, SyntaxError> {
        let names: Vec<&str> = self.identifiers.keys().map(String::as_str).collect();
        FhirPath::parse(expr, &names).map_err(|e| SyntaxError {
            offset: e.offset,
            message: e.to_string(),
        })
    }

    fn check_key(t: &str) -> Result<(), String> {
        if looks_like_type(t) && t != "Bundle" {
            Ok(())
        } else {
            Err(format!("resource must be a FHIR resource type such as Encounter (Bundles map their entries), found {t:?}"))
        }
    }

    fn for_each(check: &mut dyn Report<Self>, path: Spanned<String>) -> Option<FhirPath> {
        check.path(&path)
    }

    /// Every element at place 0: a resource's events keep rule order.
    fn each<'a>(&'a self, path: &'a FhirPath, at: &At<'a>) -> Vec<(usize, At<'a>)> {
        let items: Vec<&'a Value> = path.eval(at.ctx, &at.env).iter().map(|n| n.value).collect();
        (0..items.len())
            .map(|i| {
                let env = Env {
                    previous: i.checked_sub(1).map(|p| items[p]),
                    ..at.env
                };
                let item = At {
                    ctx: items[i],
                    env,
                    target: at.target,
                    position: Some(i),
                };
                (0, item)
            })
            .collect()
    }

    fn values<'a>(&'a self, path: &'a FhirPath, at: &At<'a>) -> Vec<Node<'a>> {
        path.eval(at.ctx, &at.env)
    }

    fn first<'a>(&'a self, path: &'a FhirPath, at: &At<'a>) -> Option<Node<'a>> {
        path.eval(at.ctx, &at.env).first().copied()
    }

    fn text(n: Node<'_>, ty: FieldType) -> Option<String> {
        let value = match (ty, n.value.get("value")) {
            // A Quantity read as a number is its value.
            (FieldType::Number, Some(q)) if n.value.is_object() => q,
            _ => n.value,
        };
        node_text(&Node { value, ..n })
    }

    fn timestamp(text: &str, tz: Tz) -> Result<DateTime<FixedOffset>, String> {
        values::parse_timestamp(text, tz).ok_or_else(|| Self::TIMESTAMP.to_string())
    }

    fn date(text: &str) -> Option<Value> {
        values::date(text)
    }

    /// From the first element found.
    fn structured<'a>(&'a self, ty: FieldType, path: &'a FhirPath, at: &At<'a>, tz: Tz) -> Typed {
        let Some(n) = self.first(path, at) else {
            return Ok(Value::Null);
        };
        match ty {
            FieldType::ObservationValue => Ok(values::observation_value(&n, tz)?),
            FieldType::ValueType => Ok(json!(values::value_type(&n))),
            _ => Ok(values::coded(n.value)),
        }
    }

    /// `Type/id[version]#Event[#i]`: a resource of its own (a result resolved in the
    /// Bundle) is keyed by itself, so it maps to the same event whether sent alone or
    /// listed by a report; an element of the resource by the resource and its index.
    fn source_key(&self, event_type: &str, per_version: bool, at: &At<'_>) -> Option<String> {
        let resource = at.target.resource;
        let own = at.position.is_some()
            && at.ctx.get("resourceType").is_some()
            && !resource
                .get("contained")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|x| std::ptr::eq(x, at.ctx)));
        let version = |r: &Value| {
            if per_version {
                version(r)
            } else {
                String::new()
            }
        };
        if own {
            base(at.ctx, None).map(|b| format!("{b}{}#{event_type}", version(at.ctx)))
        } else {
            base(resource, at.target.full_url).map(|b| {
                let v = version(resource);
                match at.position {
                    Some(i) => format!("{b}{v}#{event_type}#{i}"),
                    None => format!("{b}{v}#{event_type}"),
                }
            })
        }
    }

    /// The stream types, not the key paths (long FHIRPath fallbacks).
    fn streams_in_detail(streams: &[(&str, &FhirPath)]) -> String {
        let types: Vec<&str> = streams.iter().map(|(t, _)| *t).collect();
        format!("{} stream", types.join(" / "))
    }

    fn is_always_empty(path: &FhirPath) -> bool {
        path.is_always_empty()
    }
}

impl RuleSet<Fhir> {
    /// Maps a resource or Bundle to events, or says precisely why it cannot be.
    pub fn apply(&self, resource: &Value, tz: chrono_tz::Tz) -> Result<Mapped, Rejection> {
        let t = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        let index = Index::new(resource);
        if t != "Bundle" {
            let target = Target {
                resource,
                resource_type: t,
                full_url: None,
                index: &index,
            };
            let unmapped = || Rejection::with_detail(Reason::UnmappedResourceType, safe_type(t));
            return match self.map_one(&target, tz)?.ok_or_else(unmapped)? {
                Mapped::Events { events, .. } if events.is_empty() => Err(Rejection::with_detail(
                    Reason::MappingNoEvents,
                    safe_type(t),
                )),
                mapped => Ok(mapped),
            };
        }
        let mut out = Vec::new();
        // A Bundle whose entries an ignoring rule filters, and that gives no event, is
        // filtered as a whole (by the first such rule); filtered entries of a Bundle with
        // events are left out of it.
        let mut filtered: Option<Filter> = None;
        let mut skipped = Vec::new();
        let kind = resource.get("type").and_then(Value::as_str).unwrap_or("");
        let entries = resource.get("entry").and_then(Value::as_array);
        if !kind.ends_with("-response") {
            for (i, entry) in entries.into_iter().flatten().enumerate() {
                let Some(r) = entry.get("resource").filter(|r| r.is_object()) else {
                    continue;
                };
                let rt = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
                if rt == "MessageHeader" || rt == "Bundle" {
                    continue;
                }
                let target = Target {
                    resource: r,
                    resource_type: rt,
                    full_url: entry.get("fullUrl").and_then(Value::as_str),
                    index: &index,
                };
                match self.map_one(&target, tz) {
                    Ok(Some(Mapped::Events { events, skipped: s })) => {
                        out.extend(events);
                        skipped.extend(s);
                        if out.len() + skipped.len() > self.max_events {
                            return Err(self.too_many());
                        }
                    }
                    Ok(Some(Mapped::Filtered(f))) => {
                        filtered.get_or_insert(f);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let detail = e.detail.unwrap_or_default();
                        let detail = format!("entry[{i}] {}: {detail}", safe_type(rt));
                        return Err(Rejection::with_detail(e.reason, detail.trim_end()));
                    }
                }
            }
        }
        // A result both listed by a DiagnosticReport and sent as an entry maps once.
        let mut seen = BTreeSet::new();
        out.retain(|e| e.source_key.as_ref().is_none_or(|k| seen.insert(k.clone())));
        match filtered {
            Some(f) if out.is_empty() => Ok(Mapped::Filtered(f)),
            _ if out.is_empty() => Err(Rejection::with_detail(Reason::MappingNoEvents, "Bundle")),
            _ => Ok(Mapped::Events {
                events: out,
                skipped,
            }),
        }
    }

    /// The events of one resource; `None` when no rule for its type holds.
    fn map_one(&self, t: &Target<'_>, tz: chrono_tz::Tz) -> Result<Option<Mapped>, Rejection> {
        let root = At {
            ctx: t.resource,
            env: Env {
                resource: t.resource,
                previous: None,
                identifiers: &self.language.identifiers,
                index: t.index,
            },
            target: t,
            position: None,
        };
        self.map(t.resource_type, &root, tz)
    }

    /// The resource types these rules map.
    pub fn resource_types(&self) -> impl Iterator<Item = &str> {
        self.keys()
    }
}

/// A resource type as it may be echoed in a detail.
fn safe_type(t: &str) -> String {
    if looks_like_type(t) {
        t.to_string()
    } else {
        "unrecognised resource type".to_string()
    }
}

fn text<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `Type/id`, else the entry's fullUrl.
fn base(resource: &Value, full_url: Option<&str>) -> Option<String> {
    match (text(resource, "resourceType"), text(resource, "id")) {
        (Some(t), Some(id)) => Some(format!("{t}/{id}")),
        _ => full_url.map(str::to_string),
    }
}

/// `/_history/<versionId>`, else `#sha256:<hash of the content>`.
fn version(resource: &Value) -> String {
    match resource.pointer("/meta/versionId").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => format!("/_history/{v}"),
        _ => {
            let digest = Sha256::digest(resource.to_string().as_bytes());
            format!("#sha256:{}", crate::hex(&digest[..16]))
        }
    }
}
