//! Label sets and label matchers.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::error::{Error, Result};

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Label name.
    pub name: String,
    /// Label value.
    pub value: String,
}

impl Label {
    /// A label pair from anything string-like.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A label set, sorted by name, names unique, no empty values (an empty value means "absent").
///
/// Immutable and shared: clones are a reference count, the hash is computed once, and two clones
/// compare equal without looking at their strings — label sets are map keys on the ingest path.
#[derive(Clone)]
pub struct Labels {
    hash: u64,
    labels: Arc<[Label]>,
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.labels, &other.labels)
            || (self.hash == other.hash && self.labels == other.labels)
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.labels.cmp(&other.labels)
    }
}

impl Default for Labels {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.labels.iter()).finish()
    }
}

#[allow(non_snake_case)] // reads like the tuple struct it replaces
fn Labels(v: Vec<Label>) -> Labels {
    let mut h = rustc_hash::FxHasher::default();
    for l in &v {
        h.write(l.name.as_bytes());
        h.write_u8(0xff);
        h.write(l.value.as_bytes());
        h.write_u8(0xff);
    }
    Labels {
        hash: h.finish(),
        labels: v.into(),
    }
}

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Labels(Vec::new())
    }

    /// Builds a label set from pairs in any order; drops empty values; the last of duplicate names wins.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut v: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label::new(n, v))
            .filter(|l| !l.value.is_empty())
            .collect();
        // Stable sort keeps input order among equal names, so `dedup` below keeps the last one.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(v.len());
        for l in v {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        Labels(out)
    }

    /// Builds a label set from pairs that must already be sorted by name, unique and non-empty:
    /// the checks remote-write requires of senders.
    pub fn from_sorted(labels: Vec<Label>) -> Result<Self> {
        Self::check_sorted(&labels)?;
        Ok(Labels(labels))
    }

    /// The checks of [`Labels::from_sorted`], without taking the labels.
    pub fn check_sorted(labels: &[Label]) -> Result<()> {
        for (i, l) in labels.iter().enumerate() {
            if l.name.is_empty() {
                return Err(Error::InvalidLabels(format!("label {i} has an empty name")));
            }
            if l.value.is_empty() {
                return Err(Error::InvalidLabels(format!(
                    "label {:?} has an empty value",
                    l.name
                )));
            }
            if i > 0 {
                let prev = &labels[i - 1].name;
                if *prev == l.name {
                    return Err(Error::InvalidLabels(format!(
                        "duplicate label name {:?}",
                        l.name
                    )));
                }
                if *prev > l.name {
                    return Err(Error::InvalidLabels(format!(
                        "label names not sorted: {:?} after {:?}",
                        l.name, prev
                    )));
                }
            }
        }
        Ok(())
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].value.as_str())
    }

    /// The metric name (`__name__`), or `""` when absent.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME).unwrap_or("")
    }

    /// The labels in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.labels.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The set without `__name__`.
    pub fn without_name(&self) -> Labels {
        Labels(
            self.labels
                .iter()
                .filter(|l| l.name != METRIC_NAME)
                .cloned()
                .collect(),
        )
    }

    /// Only the labels named in `names`.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(
            self.labels
                .iter()
                .filter(|l| names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }

    /// The set without the labels named in `names`.
    pub fn remove(&self, names: &[String]) -> Labels {
        Labels(
            self.labels
                .iter()
                .filter(|l| !names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }

    /// The set with label `name` set to `value`, or removed if `value` is empty.
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let mut v: Vec<Label> = self
            .labels
            .iter()
            .filter(|l| l.name != name)
            .cloned()
            .collect();
        if !value.is_empty() {
            let at = v.partition_point(|l| l.name.as_str() < name);
            v.insert(at, Label::new(name, value));
        }
        Labels(v)
    }

    /// Adds every label of `external` whose name this set does not have: a series keeps its own
    /// value for a name it already carries (Prometheus `external_labels` semantics).
    pub fn with_external(&self, external: &Labels) -> Labels {
        if external.is_empty() {
            return self.clone();
        }
        let mut v = self.labels.to_vec();
        for l in external.labels.iter() {
            if self.get(&l.name).is_none() {
                v.push(l.clone());
            }
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Labels(v)
    }

    /// The labels without `__name__`, encoded as `name 0xff value 0xff ...` (0xff never occurs in UTF-8).
    pub fn encode_without_name(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.labels
                .iter()
                .map(|l| l.name.len() + l.value.len() + 2)
                .sum(),
        );
        for l in self.labels.iter().filter(|l| l.name != METRIC_NAME) {
            out.extend_from_slice(l.name.as_bytes());
            out.push(SEP);
            out.extend_from_slice(l.value.as_bytes());
            out.push(SEP);
        }
        out
    }

    /// The order of series in a block file: metric name, then the other labels as the bytes of
    /// [`Labels::encode_without_name`] (compared without building them).
    pub fn cmp_block_order(&self, other: &Labels) -> std::cmp::Ordering {
        fn bytes(labels: &Labels) -> impl Iterator<Item = u8> + '_ {
            labels
                .labels
                .iter()
                .filter(|l| l.name != METRIC_NAME)
                .flat_map(|l| {
                    l.name
                        .bytes()
                        .chain([SEP])
                        .chain(l.value.bytes())
                        .chain([SEP])
                })
        }
        self.metric_name()
            .cmp(other.metric_name())
            .then_with(|| bytes(self).cmp(bytes(other)))
    }

    /// Inverse of [`Labels::encode_without_name`], with the metric name added back.
    pub fn decode_with_name(metric_name: &str, encoded: &[u8]) -> Result<Labels> {
        let mut v = Vec::new();
        if !metric_name.is_empty() {
            v.push(Label::new(METRIC_NAME, metric_name));
        }
        let mut parts = encoded.split(|b| *b == SEP);
        // The encoding ends with a separator, so the last part is empty.
        while let Some(name) = parts.next().filter(|n| !n.is_empty()) {
            let value = parts
                .next()
                .ok_or_else(|| Error::Corrupt("label without value in labels column".into()))?;
            let utf8 = |b: &[u8]| {
                String::from_utf8(b.to_vec())
                    .map_err(|_| Error::Corrupt("labels column is not UTF-8".into()))
            };
            v.push(Label {
                name: utf8(name)?,
                value: utf8(value)?,
            });
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Labels(v))
    }
}

const SEP: u8 = 0xff;

impl fmt::Display for Labels {
    /// Prometheus notation: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric_name())?;
        f.write_str("{")?;
        let mut first = true;
        for l in self.labels.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

/// How a [`Matcher`] compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`, fully anchored
    Regex,
    /// `!~`, fully anchored
    NotRegex,
}

impl fmt::Display for Matcher {
    /// PromQL's spelling: `name="value"`, `name=~"re"`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

/// A label matcher as in PromQL selectors; a missing label matches as the empty string.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or regular expression as written.
    pub value: String,
    regex: Option<regex::Regex>,
}

impl Matcher {
    /// A matcher; regular expressions are anchored at both ends and `.` matches newlines, as in Prometheus.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::Regex::new(&format!("^(?s:{value})$"))
                    .map_err(|e| Error::InvalidMatcher(format!("{value:?}: {e}")))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// Shorthand for an `=` matcher.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// Whether `value` (`""` for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => {
                unreachable!("regex matchers are built with a regex")
            }
        }
    }

    /// Whether the label set satisfies the matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

/// [`matches_all`] on a series as a block stores it: its metric name and its other labels
/// encoded by [`Labels::encode_without_name`], read in place (a block scan's row filter tests
/// every row of the pages it reads, most of them other series).
pub fn matches_all_encoded(
    matchers: &[Matcher],
    metric_name: &str,
    encoded: &[u8],
    external: &Labels,
) -> Result<bool> {
    for m in matchers {
        let own = if m.name == METRIC_NAME {
            Some(metric_name).filter(|n| !n.is_empty())
        } else {
            encoded_value(encoded, &m.name)?
        };
        if !m.matches(own.or_else(|| external.get(&m.name)).unwrap_or("")) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The value of label `name` in an encoding of [`Labels::encode_without_name`], the others
/// skipped.
fn encoded_value<'a>(encoded: &'a [u8], name: &str) -> Result<Option<&'a str>> {
    let mut parts = encoded.split(|b| *b == SEP);
    while let Some(n) = parts.next().filter(|n| !n.is_empty()) {
        let value = parts
            .next()
            .ok_or_else(|| Error::Corrupt("label without value in labels column".into()))?;
        if n == name.as_bytes() {
            return std::str::from_utf8(value)
                .map(Some)
                .map_err(|_| Error::Corrupt("labels column is not UTF-8".into()));
        }
    }
    Ok(None)
}

/// True if every matcher accepts `labels` with `external` added (as
/// [`Labels::with_external`], without building the set).
pub fn matches_all(matchers: &[Matcher], labels: &Labels, external: &Labels) -> bool {
    matchers.iter().all(|m| {
        let value = labels.get(&m.name).or_else(|| external.get(&m.name));
        m.matches(value.unwrap_or(""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_encoded_labels_equals_matching_decoded_ones() {
        let sets = [
            Labels::from_pairs([("__name__", "up"), ("job", "node"), ("cluster", "a")]),
            Labels::from_pairs([("job", "node")]),
            Labels::from_pairs([("__name__", "up"), ("jobs", "x"), ("zz", "")]),
        ];
        let external = Labels::from_pairs([("cluster", "ext"), ("region", "eu")]);
        let matchers = [
            Matcher::equal("__name__", "up"),
            Matcher::new(MatchOp::NotEqual, "job", "").unwrap(),
            Matcher::new(MatchOp::Regex, "cluster", "a|ext").unwrap(),
            Matcher::new(MatchOp::NotRegex, "region", "us.*").unwrap(),
            Matcher::equal("job", "node"),
            Matcher::equal("__name__", ""),
            Matcher::equal("missing", ""),
        ];
        for labels in &sets {
            let encoded = labels.encode_without_name();
            for m in &matchers {
                let one = std::slice::from_ref(m);
                assert_eq!(
                    matches_all_encoded(one, labels.metric_name(), &encoded, &external).unwrap(),
                    matches_all(one, labels, &external),
                    "{m:?} on {labels}"
                );
            }
        }
        assert!(matches_all_encoded(&matchers[1..2], "up", b"job", &external).is_err());
        assert!(matches_all_encoded(&matchers[1..2], "up", b"job\xff\xc3\xff", &external).is_err());
    }

    #[test]
    fn from_pairs_sorts_dedups_and_drops_empty() {
        let l = Labels::from_pairs([("b", "1"), ("a", "2"), ("b", "3"), ("c", "")]);
        assert_eq!(
            l.iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect::<Vec<_>>(),
            [("a", "2"), ("b", "3")]
        );
    }

    #[test]
    fn from_sorted_rejects_bad_sets() {
        let cases = [
            (
                "unsorted",
                vec![Label::new("b", "1"), Label::new("a", "1")],
                "not sorted",
            ),
            (
                "duplicate",
                vec![Label::new("a", "1"), Label::new("a", "2")],
                "duplicate",
            ),
            ("empty name", vec![Label::new("", "1")], "empty name"),
            ("empty value", vec![Label::new("a", "")], "empty value"),
        ];
        for (name, labels, want) in cases {
            let err = Labels::from_sorted(labels).unwrap_err().to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn encode_decode_roundtrip() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a\"b\nc"), ("zone", "é")]);
        let back = Labels::decode_with_name("up", &l.encode_without_name()).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn builders() {
        let l = Labels::from_pairs([("__name__", "up"), ("a", "1"), ("c", "3")]);
        assert_eq!(
            l.without_name(),
            Labels::from_pairs([("a", "1"), ("c", "3")])
        );
        assert_eq!(l.keep(&["a".into()]), Labels::from_pairs([("a", "1")]));
        assert_eq!(
            l.remove(&["a".into()]),
            Labels::from_pairs([("__name__", "up"), ("c", "3")])
        );
        assert_eq!(l.with("b", "2").get("b"), Some("2"));
        assert_eq!(
            l.with("b", "2")
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>(),
            ["__name__", "a", "b", "c"]
        );
        assert_eq!(l.with("a", "").get("a"), None);
    }

    #[test]
    fn external_labels_do_not_override() {
        let l = Labels::from_pairs([("__name__", "up"), ("cluster", "own")]);
        let ext = Labels::from_pairs([("cluster", "ext"), ("region", "eu")]);
        let got = l.with_external(&ext);
        assert_eq!(got.get("cluster"), Some("own"));
        assert_eq!(got.get("region"), Some("eu"));
    }

    #[test]
    fn matchers_follow_prometheus() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "api")]);
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap().matches_labels(&l);
        assert!(m(MatchOp::Equal, "job", "api"));
        assert!(m(MatchOp::Equal, "missing", ""));
        assert!(!m(MatchOp::NotEqual, "missing", ""));
        assert!(m(MatchOp::Regex, "job", "a.i"));
        assert!(!m(MatchOp::Regex, "job", "a"), "regex is anchored");
        assert!(m(MatchOp::NotRegex, "job", "x.*"));
        assert!(m(MatchOp::Regex, "missing", ".*"));
        assert!(Matcher::new(MatchOp::Regex, "a", "(").is_err());
    }
}
