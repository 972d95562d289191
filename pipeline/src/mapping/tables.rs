//! Code tables: a tenant's local codes mapped to shared ones (locations, local test codes
//! to LOINC, unit spellings to UCUM).
//!
//! `mappings/<tenant>/tables/<name>.csv`: a header line, then `from,to` per line (the
//! first comma splits; `#` starts a comment line). Or `<name>.yaml`: a map `from: to`.

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
                "csv" => csv(&text)
                    .map_err(|(line, m)| errors.push(err(line, m)))
                    .ok(),
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

fn csv(text: &str) -> Result<HashMap<String, String>, (u32, String)> {
    let mut map = HashMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i as u32 + 1;
        let (from, to) = line
            .split_once(',')
            .ok_or((n, "expected from,to".to_string()))?;
        let (from, to) = (from.trim().trim_matches('"'), to.trim().trim_matches('"'));
        if map.insert(from.to_string(), to.to_string()).is_some() {
            return Err((n, format!("duplicate code {from:?}")));
        }
    }
    Ok(map)
}
