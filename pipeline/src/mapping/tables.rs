//! Code tables: a tenant's local codes mapped to shared ones (locations, local test codes
//! to LOINC, unit spellings to UCUM).
//!
//! `mappings/<tenant>/tables/<name>.csv` is RFC 4180 CSV: a header row of two snake_case
//! column names (`local_code,loinc`), then one `code,value` row per line. Cells may be
//! quoted (`"ONC, 6 North"`), `#` starts a comment line, spaces around cells are trimmed.
//! A row with more or fewer than two cells, an empty cell and a repeated code are errors
//! at `file:line:col`, as is a first row that is no header. Or `<name>.yaml`: a map
//! `code: value`.

use super::LoadError;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// All of a tenant's tables, by name (the file stem).
#[derive(Debug, Clone, Default)]
pub struct Tables {
    by_name: BTreeMap<String, HashMap<String, String>>,
}

impl Tables {
    /// Looks `key` up in `table`.
    pub fn lookup(&self, table: &str, key: &str) -> Option<&str> {
        self.by_name.get(table)?.get(key).map(String::as_str)
    }

    /// Whether a table of this name exists.
    pub fn contains(&self, table: &str) -> bool {
        self.by_name.contains_key(table)
    }

    /// Loads `dir/tables/*.{csv,yaml,yml}`; returns the tables and the files read (for
    /// the mapping version hash).
    pub(super) fn load(dir: &Path, errors: &mut Vec<LoadError>) -> (Tables, Vec<(String, String)>) {
        let mut tables = Tables::default();
        let mut contents = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir.join("tables")) else {
            return (tables, contents);
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let (Some(stem), Some(ext)) = (
                file.file_stem().and_then(|s| s.to_str()),
                file.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            let err = |line: u32, message: String| LoadError {
                file: file.clone(),
                line,
                column: 1,
                message,
            };
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(err(0, e.to_string()));
                    continue;
                }
            };
            let table = match ext {
                "csv" => {
                    let (table, problems) = csv(&text);
                    let clean = problems.is_empty();
                    errors.extend(problems.into_iter().map(|p| LoadError {
                        file: file.clone(),
                        line: p.line,
                        column: p.column,
                        message: p.message,
                    }));
                    clean.then_some(table)
                }
                "yaml" | "yml" => serde_saphyr::from_str::<BTreeMap<String, String>>(&text)
                    .map(|m| m.into_iter().collect())
                    .map_err(|e| errors.push(super::yaml_error(&file, &e)))
                    .ok(),
                _ => continue,
            };
            if let Some(t) = table {
                contents.push((format!("tables/{stem}.{ext}"), text));
                tables.by_name.insert(stem.to_string(), t);
            }
        }
        (tables, contents)
    }
}

/// One thing wrong in a CSV table, at a 1-based line and column.
#[derive(Debug, PartialEq)]
struct Problem {
    line: u32,
    column: u32,
    message: String,
}

/// Reads a CSV table: the header row, then `code,value` rows. Returns the table and
/// every problem found (the table is used only when there are none).
fn csv(text: &str) -> (HashMap<String, String>, Vec<Problem>) {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let lines: Vec<&str> = text.lines().collect();
    let mut map = HashMap::new();
    let mut problems = Vec::new();
    let mut header_seen = false;
    let mut first_line: HashMap<String, u32> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as u32);
                problems.push(Problem {
                    line,
                    column: 1,
                    message: format!("not valid CSV: {}", csv_error_kind(&e)),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as u32);
        let text_line = lines.get(line as usize - 1).copied().unwrap_or("");
        let at = |cell: usize, message: String| Problem {
            line,
            column: column_of(text_line, cell),
            message,
        };
        if record.len() == 1 && record.get(0) == Some("") {
            continue; // a blank line
        }
        if !header_seen {
            header_seen = true;
            let names: Vec<&str> = record.iter().collect();
            match names.as_slice() {
                [a, b] if is_snake_case(a) && is_snake_case(b) && a != b => {}
                _ => problems.push(at(
                    0,
                    "the first row must be a header of two different snake_case column \
                     names, such as `local_code,loinc`"
                        .into(),
                )),
            }
            continue;
        }
        if record.len() != 2 {
            let cell = record.len().min(2);
            problems.push(at(
                cell,
                format!("expected 2 cells (code,value), found {}", record.len()),
            ));
            continue;
        }
        let (code, value) = (&record[0], &record[1]);
        if code.is_empty() {
            problems.push(at(0, "empty code".into()));
            continue;
        }
        if value.is_empty() {
            problems.push(at(
                1,
                format!("empty value for code {code:?} (leave the code out and use the field's default)"),
            ));
            continue;
        }
        if let Some(first) = first_line.get(code) {
            problems.push(at(
                0,
                format!("duplicate code {code:?} (first on line {first})"),
            ));
            continue;
        }
        first_line.insert(code.to_string(), line);
        map.insert(code.to_string(), value.to_string());
    }
    if !header_seen {
        problems.push(Problem {
            line: 1,
            column: 1,
            message: "no header row: a table starts with two snake_case column names".into(),
        });
    }
    (map, problems)
}

/// What a CSV syntax error is, without quoting the text.
fn csv_error_kind(e: &::csv::Error) -> &'static str {
    match e.kind() {
        ::csv::ErrorKind::Utf8 { .. } => "a cell is not UTF-8",
        _ => "malformed quoting",
    }
}

/// `[a-z][a-z0-9_]*`.
fn is_snake_case(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The 1-based column where cell `index` of `line` starts (commas inside quotes do not
/// count); the line's end + 1 when it has fewer cells.
fn column_of(line: &str, index: usize) -> u32 {
    let mut cell = 0;
    let mut quoted = false;
    for (i, b) in line.bytes().enumerate() {
        if cell == index {
            let skipped = line[i..].len() - line[i..].trim_start().len();
            return (i + skipped) as u32 + 1;
        }
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => cell += 1,
            _ => {}
        }
    }
    line.len() as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<(u32, u32, String)> {
        csv(text)
            .1
            .into_iter()
            .map(|p| (p.line, p.column, p.message))
            .collect()
    }

    #[test]
    fn a_table_reads_quoted_cells_comments_and_spaces() {
        let (map, errs) = csv(
            "local,shared\n# a comment\n6NORTH , ONC-6N\n\"ONC, 6 \"\"N\"\"\",\"x,y\"\n\nA,B\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(map.get("6NORTH").map(String::as_str), Some("ONC-6N"));
        assert_eq!(map.get("ONC, 6 \"N\"").map(String::as_str), Some("x,y"));
        assert_eq!(map.get("A").map(String::as_str), Some("B"));
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn a_table_without_header_is_refused_and_its_first_row_not_lost_silently() {
        assert_eq!(
            problems("6NORTH,ONC-6N\n7SOUTH,CARD-7S\n"),
            vec![(
                1,
                1,
                "the first row must be a header of two different snake_case column names, \
                 such as `local_code,loinc`"
                    .to_string()
            )]
        );
        assert_eq!(problems("").len(), 1);
        assert_eq!(problems("code,code\nA,B\n").len(), 1);
    }

    #[test]
    fn extra_missing_and_empty_cells_are_errors_where_they_are() {
        assert_eq!(
            problems("local,shared\n6NORTH,ONC-6N,extra\n7SOUTH\n,X\nY, \n"),
            vec![
                (2, 15, "expected 2 cells (code,value), found 3".to_string()),
                (3, 7, "expected 2 cells (code,value), found 1".to_string()),
                (4, 1, "empty code".to_string()),
                (
                    5,
                    4,
                    "empty value for code \"Y\" (leave the code out and use the field's default)"
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_repeated_code_names_its_first_line() {
        assert_eq!(
            problems("local,shared\nA,1\nB,2\nA,3\n"),
            vec![(4, 1, "duplicate code \"A\" (first on line 2)".to_string())]
        );
    }

    #[test]
    fn a_comma_inside_quotes_does_not_move_the_column() {
        assert_eq!(column_of("\"a,b\",c,d", 2), 9);
        assert_eq!(column_of("a, b", 1), 4);
        assert_eq!(column_of("a", 1), 2);
    }
}
