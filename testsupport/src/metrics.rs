//! The one parser of the operator's `/metrics` answer (Prometheus / OpenMetrics text): its
//! samples, and each family's `# TYPE`, `# HELP` and `# UNIT`.

use std::collections::{BTreeMap, BTreeSet};

/// One sample of a scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, empty when the sample has none.
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or("")
    }
}

/// A parsed `/metrics` answer.
#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Family name → type, from `# TYPE` lines.
    pub types: BTreeMap<String, String>,
    /// Family name → help text, from `# HELP` lines.
    pub helps: BTreeMap<String, String>,
    /// Family name → unit, from `# UNIT` lines.
    pub units: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses `text`; panics on a sample line it cannot read.
    pub fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let (kind, name, text) = (parts.next(), parts.next(), parts.next());
                let map = match kind {
                    Some("TYPE") => &mut scrape.types,
                    Some("HELP") => &mut scrape.helps,
                    Some("UNIT") => &mut scrape.units,
                    _ => continue,
                };
                if let Some(name) = name {
                    map.insert(name.to_string(), text.unwrap_or("").trim().to_string());
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            scrape.samples.push(parse_sample(line));
        }
        scrape
    }

    /// Samples of `name` whose labels include all of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == *v))
            .collect()
    }

    /// The one value of `name` with `labels`; panics unless there is exactly one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert_eq!(
            found.len(),
            1,
            "expected one sample {name}{labels:?}, found {found:?}"
        );
        found[0].value
    }

    /// The value of one series written as in the text, `name` or `name{key="value",...}`
    /// (exactly those labels), if the scrape has it.
    pub fn series(&self, series: &str) -> Option<f64> {
        let wanted = parse_sample(&format!("{series} 0"));
        self.samples
            .iter()
            .find(|s| s.name == wanted.name && s.labels == wanted.labels)
            .map(|s| s.value)
    }

    /// Whether a query may use `name`: a sample of that name, or a declared family
    /// it belongs to (a counter's `_total`, a histogram's `_bucket`/`_sum`/`_count`).
    pub fn knows(&self, name: &str) -> bool {
        if self.samples.iter().any(|s| s.name == name) || self.types.contains_key(name) {
            return true;
        }
        let family = |suffix: &str, kinds: &[&str]| {
            name.strip_suffix(suffix).is_some_and(|base| {
                self.types
                    .get(base)
                    .is_some_and(|k| kinds.contains(&k.as_str()))
            })
        };
        family("_total", &["counter"])
            || family("_bucket", &["histogram"])
            || family("_sum", &["histogram", "summary"])
            || family("_count", &["histogram", "summary"])
    }

    /// The shape a user sees, without values: each family (sorted by name) with its type,
    /// unit and help, then each sample name with its label names, once.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        let families: BTreeSet<&String> = self
            .types
            .keys()
            .chain(self.helps.keys())
            .chain(self.units.keys())
            .collect();
        for family in families {
            let of = |m: &BTreeMap<String, String>| m.get(family).cloned().unwrap_or_default();
            out.push_str(&format!("# TYPE {family} {}\n", of(&self.types)));
            if self.units.contains_key(family) {
                out.push_str(&format!("# UNIT {family} {}\n", of(&self.units)));
            }
            out.push_str(&format!("# HELP {family} {}\n", of(&self.helps)));
        }
        let series: BTreeSet<String> = self
            .samples
            .iter()
            .map(|s| {
                let keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
                format!("{}{{{}}}", s.name, keys.join(","))
            })
            .collect();
        for s in series {
            out.push_str(&s);
            out.push('\n');
        }
        out
    }
}

/// The value of `series` (see [`Scrape::series`]) in the `/metrics` text `text`.
pub fn series(text: &str, series: &str) -> Option<f64> {
    Scrape::parse(text).series(series)
}

/// One sample line: name, labels (with escapes) and value.
pub fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("a sample line without a value: {line}"));
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let mut end = None;
        loop {
            // key
            let mut key = String::new();
            while let Some(&(i, c)) = chars.peek() {
                if c == '}' {
                    end = Some(i);
                    break;
                }
                chars.next();
                if c == '=' {
                    break;
                }
                if c != ',' && c != ' ' {
                    key.push(c);
                }
            }
            if end.is_some() {
                break;
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
            let mut value = String::new();
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(other) => value.push(other),
                        None => break,
                    },
                    '"' => break,
                    other => value.push(other),
                }
            }
            labels.insert(key, value);
        }
        let end = end.unwrap_or_else(|| panic!("unterminated labels: {line}"));
        rest = &inner[end + 1..];
    }
    let value_text = rest
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no value: {line}"));
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .unwrap_or_else(|e| panic!("bad value {v:?} in {line}: {e}")),
    };
    Sample {
        name,
        labels,
        value,
    }
}
