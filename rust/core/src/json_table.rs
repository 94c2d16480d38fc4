//! JSON records → Arrow record batches, for writing JSONL input as Parquet.
//!
//! A first pass over the records infers one type per top-level field; a second pass fills the
//! columns. Nothing is lost: a field keeps a native type (bool, int64, float64, string) only when
//! every value fits it exactly, and is otherwise stored as the JSON text of each value (objects,
//! arrays, mixed kinds), which `DuckDB` reads back with its `json` functions. Absent and `null`
//! values are nulls. Records are split into fields without decoding their values (`RawRecord`), so
//! inference never copies a text, and the second pass decodes each value once, into its column.

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// One JSON object's top-level fields in order, each value left as its raw JSON text. A repeated
/// key keeps its last value, as `serde_json`'s maps do.
#[derive(Debug, Default)]
pub struct RawRecord<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawRecord<'a> {
    /// Split the JSON object `raw` into its fields (the whole object is validated).
    ///
    /// # Errors
    /// When `raw` is not one JSON object.
    pub fn parse(raw: &'a [u8]) -> serde_json::Result<Self> {
        let mut de = serde_json::Deserializer::from_slice(raw);
        let record = de.deserialize_map(RecordVisitor)?;
        de.end()?;
        Ok(record)
    }

    /// The raw value of field `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// The string value of field `name`, decoded; `None` if absent or not a string.
    #[must_use]
    pub fn get_str(&self, name: &str) -> Option<Cow<'a, str>> {
        self.get(name).and_then(decode_str)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = RawRecord<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRecord<'de>, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value: &'de RawValue = map.next_value()?;
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => fields.push((key, value)),
            }
        }
        Ok(RawRecord { fields })
    }
}

/// A key, borrowed from the input unless it holds escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// The decoded text of a raw JSON string (borrowed when it has no escapes); `None` for other kinds.
fn decode_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    if !s.starts_with('"') {
        return None;
    }
    if memchr::memchr(b'\\', s.as_bytes()).is_none() {
        return Some(Cow::Borrowed(&s[1..s.len() - 1]));
    }
    serde_json::from_str::<String>(s).ok().map(Cow::Owned)
}

/// Integers up to 2^53 convert to float64 exactly, so int and float values may share a column.
const EXACT_FLOAT_INT: u64 = 1 << 53;

/// The column type a field's values allow so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only nulls seen (written as an all-null string column).
    Null,
    Bool,
    Int,
    Float,
    Str,
    /// The JSON text of every value.
    Json,
}

impl Kind {
    /// The kind of a raw JSON value, and its value when it is an integer that fits i64.
    fn of(raw: &RawValue) -> (Kind, Option<i64>) {
        let s = raw.get();
        match s.as_bytes()[0] {
            b'n' => (Kind::Null, None),
            b't' | b'f' => (Kind::Bool, None),
            b'"' => (Kind::Str, None),
            b'{' | b'[' => (Kind::Json, None),
            // A float past f64's range (JSON allows 1e400) keeps its text.
            _ if s.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) => match s.parse::<f64>() {
                Ok(f) if f.is_finite() => (Kind::Float, None),
                _ => (Kind::Json, None),
            },
            // Integers past i64 keep their exact digits as JSON text.
            _ => s
                .parse::<i64>()
                .map_or((Kind::Json, None), |i| (Kind::Int, Some(i))),
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Null | Kind::Str | Kind::Json => DataType::Utf8,
        }
    }
}

/// A field's inferred kind, and the largest integer magnitude seen (for int + float columns).
#[derive(Clone, Copy, Debug)]
struct Inferred {
    kind: Kind,
    max_abs_int: u64,
}

impl Inferred {
    fn observe(&mut self, v: &RawValue) {
        let (seen, int) = Kind::of(v);
        if let Some(i) = int {
            self.max_abs_int = self.max_abs_int.max(i.unsigned_abs());
        }
        self.kind = match (self.kind, seen) {
            (k, Kind::Null) | (Kind::Null, k) => k,
            (a, b) if a == b => a,
            (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
            _ => Kind::Json,
        };
        if self.kind == Kind::Float && self.max_abs_int > EXACT_FLOAT_INT {
            self.kind = Kind::Json;
        }
    }
}

/// The columns of a table of JSON records: pinned leading string columns (id, text), then every
/// other field in order of first appearance.
#[derive(Debug, Default)]
pub struct SchemaInference {
    pinned: Vec<String>,
    order: Vec<String>,
    fields: HashMap<String, Inferred>,
}

impl SchemaInference {
    /// `pinned` fields come first and are always strings; the caller supplies their values.
    #[must_use]
    pub fn new(pinned: &[&str]) -> Self {
        Self {
            pinned: pinned.iter().map(|s| (*s).to_owned()).collect(),
            ..Self::default()
        }
    }

    pub fn observe(&mut self, record: &RawRecord) {
        for (name, v) in &record.fields {
            if self.pinned.iter().any(|p| p == name) {
                continue;
            }
            // Looked up by &str first: a field name is allocated once, not once per record.
            if let Some(f) = self.fields.get_mut(name.as_ref()) {
                f.observe(v);
                continue;
            }
            let mut f = Inferred {
                kind: Kind::Null,
                max_abs_int: 0,
            };
            f.observe(v);
            self.order.push(name.to_string());
            self.fields.insert(name.to_string(), f);
        }
    }

    /// The kind inferred for `name` (pinned fields are strings).
    #[must_use]
    pub fn kind(&self, name: &str) -> Option<Kind> {
        if self.pinned.iter().any(|p| p == name) {
            return Some(Kind::Str);
        }
        self.fields.get(name).map(|f| f.kind)
    }

    #[must_use]
    pub fn finish(self) -> TableBuilder {
        let pinned = self.pinned.len();
        let mut columns: Vec<(String, Kind)> =
            self.pinned.into_iter().map(|p| (p, Kind::Str)).collect();
        columns.extend(self.order.into_iter().map(|name| {
            let kind = self.fields[&name].kind;
            (name, kind)
        }));
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(name, kind)| Field::new(name, kind.data_type(), true))
                .collect::<Vec<_>>(),
        ));
        let builders = columns.iter().map(|(_, k)| Column::new(*k)).collect();
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), i))
            .collect();
        TableBuilder {
            schema,
            pinned,
            index,
            builders,
            rows: 0,
            bytes: 0,
        }
    }
}

/// One converted value, checked against its column before anything is appended.
enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Json(&'a str),
}

enum Column {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
    Json(StringBuilder),
}

impl Column {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Bool => Column::Bool(BooleanBuilder::new()),
            Kind::Int => Column::Int(Int64Builder::new()),
            Kind::Float => Column::Float(Float64Builder::new()),
            Kind::Null | Kind::Str => Column::Str(StringBuilder::new()),
            Kind::Json => Column::Json(StringBuilder::new()),
        }
    }

    /// The raw value `v` as a value of this column; `None` if it does not fit (the record
    /// differs from the one the inference pass saw).
    fn cell<'a>(&self, v: &'a RawValue) -> Option<Cell<'a>> {
        let s = v.get();
        if s == "null" {
            return Some(Cell::Null);
        }
        Some(match self {
            Column::Bool(_) => Cell::Bool(match s {
                "true" => true,
                "false" => false,
                _ => return None,
            }),
            Column::Int(_) => Cell::Int(s.parse().ok()?),
            // Raw JSON that parses as a finite f64 is a number (strings keep their quotes).
            Column::Float(_) => Cell::Float(s.parse().ok().filter(|f: &f64| f.is_finite())?),
            Column::Str(_) => Cell::Str(decode_str(v)?),
            Column::Json(_) => Cell::Json(s),
        })
    }

    /// Append a cell made by `cell`; returns the bytes added (strings by length, others as 8).
    fn push(&mut self, cell: Cell) -> usize {
        match (self, cell) {
            (b, Cell::Null) => {
                b.append_null();
                return 0;
            }
            (Column::Bool(b), Cell::Bool(x)) => b.append_value(x),
            (Column::Int(b), Cell::Int(x)) => b.append_value(x),
            (Column::Float(b), Cell::Float(x)) => b.append_value(x),
            (Column::Str(b), Cell::Str(x)) => {
                b.append_value(&x);
                return x.len();
            }
            (Column::Json(b), Cell::Json(x)) => {
                b.append_value(x);
                return x.len();
            }
            _ => unreachable!("cells are made for their column"),
        }
        8
    }

    fn append_null(&mut self) {
        match self {
            Column::Bool(b) => b.append_null(),
            Column::Int(b) => b.append_null(),
            Column::Float(b) => b.append_null(),
            Column::Str(b) | Column::Json(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Int(b) => Arc::new(b.finish()),
            Column::Float(b) => Arc::new(b.finish()),
            Column::Str(b) | Column::Json(b) => Arc::new(b.finish()),
        }
    }
}

/// Fills the columns of an inferred schema, row by row, and cuts them into record batches.
pub struct TableBuilder {
    schema: SchemaRef,
    pinned: usize,
    index: HashMap<String, usize>,
    builders: Vec<Column>,
    rows: usize,
    bytes: usize,
}

impl TableBuilder {
    #[must_use]
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Append one record: `pinned` holds the values of the pinned columns, in their order.
    ///
    /// # Errors
    /// A field, or a value kind, the inference pass did not see (the input changed between the
    /// passes). Nothing is appended then.
    pub fn append(&mut self, pinned: &[&str], record: &RawRecord) -> Result<(), String> {
        let mut cells: Vec<Option<Cell>> = (0..self.builders.len()).map(|_| None).collect();
        for (i, v) in pinned.iter().enumerate() {
            cells[i] = Some(Cell::Str(Cow::Borrowed(*v)));
        }
        for (name, v) in &record.fields {
            let &i = self
                .index
                .get(name.as_ref())
                .ok_or_else(|| format!("field {name:?} was not in the first pass"))?;
            if i < self.pinned {
                continue;
            }
            let cell = self.builders[i].cell(v).ok_or_else(|| {
                format!(
                    "field {name:?}: {} does not fit the inferred column",
                    v.get()
                )
            })?;
            cells[i] = Some(cell);
        }
        for (b, cell) in self.builders.iter_mut().zip(cells) {
            self.bytes += b.push(cell.unwrap_or(Cell::Null));
        }
        self.rows += 1;
        Ok(())
    }

    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes appended since the last batch (strings by length, other values as 8).
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The rows appended since the last call, as one batch.
    ///
    /// # Panics
    /// Never: the columns are built to the schema.
    pub fn take_batch(&mut self) -> RecordBatch {
        let columns = self.builders.iter_mut().map(Column::finish).collect();
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), columns).expect("columns match the schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::{Array, BooleanArray};

    fn infer(lines: &[&str]) -> SchemaInference {
        let mut s = SchemaInference::new(&["id", "text"]);
        for line in lines {
            s.observe(&RawRecord::parse(line.as_bytes()).expect("an object"));
        }
        s
    }

    #[test]
    fn records_split_into_raw_fields() {
        let r = RawRecord::parse(br#" {"a": {"b": [1, 2]}, "t\u0065xt": "x\ny", "a": 3} "#)
            .expect("an object");
        // The repeated key keeps its last value, the escaped key is decoded.
        assert_eq!(r.fields.len(), 2);
        assert_eq!(r.get("a").map(RawValue::get), Some("3"));
        assert_eq!(r.get_str("text").as_deref(), Some("x\ny"));
        assert_eq!(r.get_str("a"), None);
        assert!(RawRecord::parse(b"[1]").is_err());
        assert!(RawRecord::parse(br#"{"a": 1} x"#).is_err());
    }

    #[test]
    fn kinds_widen_only_as_far_as_exact() {
        let s = infer(&[
            r#"{"a": 1, "b": 1, "c": "x", "d": true, "e": null, "f": [1], "g": 1, "h": 1, "u": 1}"#,
            r#"{"a": 2, "b": 2.5, "c": null, "d": false, "f": {"k": 1}, "g": "1", "h": 9007199254740993}"#,
            r#"{"b": null, "h": 0.5, "u": 18446744073709551615}"#,
        ]);
        assert_eq!(s.kind("a"), Some(Kind::Int));
        assert_eq!(s.kind("b"), Some(Kind::Float));
        assert_eq!(s.kind("c"), Some(Kind::Str));
        assert_eq!(s.kind("d"), Some(Kind::Bool));
        assert_eq!(s.kind("e"), Some(Kind::Null));
        assert_eq!(s.kind("f"), Some(Kind::Json));
        // A string and a number: only JSON text keeps "1" and 1 apart.
        assert_eq!(s.kind("g"), Some(Kind::Json));
        // 2^53 + 1 and a float: float64 would round the integer.
        assert_eq!(s.kind("h"), Some(Kind::Json));
        // Past i64: the exact digits, as JSON text.
        assert_eq!(s.kind("u"), Some(Kind::Json));
        assert_eq!(s.kind("id"), Some(Kind::Str));
    }

    #[test]
    fn batches_hold_every_value() {
        let lines = [
            r#"{"id": 7, "text": "ignored", "n": 1, "x": 0.5, "ok": true, "meta": {"a": [1, 2]}, "m": 3}"#,
            r#"{"m": "th\"ree", "n": -4, "x": 1e3, "late": "only here"}"#,
        ];
        let mut s = SchemaInference::new(&["id", "text"]);
        for line in lines {
            s.observe(&RawRecord::parse(line.as_bytes()).expect("an object"));
        }
        let mut t = s.finish();
        let names: Vec<String> = t
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["id", "text", "n", "x", "ok", "meta", "m", "late"]);
        for (line, pinned) in lines.iter().zip([["7", "first"], ["f.jsonl:2", "second"]]) {
            t.append(
                &pinned,
                &RawRecord::parse(line.as_bytes()).expect("an object"),
            )
            .expect("fits");
        }
        assert_eq!(t.rows(), 2);
        let b = t.take_batch();
        assert_eq!(t.rows(), 0);
        let col = |name: &str| b.column(b.schema().index_of(name).expect("column")).clone();
        let id = col("id");
        assert_eq!(id.as_string::<i32>().value(0), "7");
        assert_eq!(col("text").as_string::<i32>().value(1), "second");
        let n = col("n");
        assert_eq!(n.as_primitive::<Int64Type>().values(), &[1, -4]);
        let x = col("x");
        assert_eq!(x.as_primitive::<Float64Type>().values(), &[0.5, 1000.0]);
        let ok = col("ok");
        let ok: &BooleanArray = ok.as_boolean();
        assert!(ok.value(0) && ok.is_null(1));
        let meta = col("meta");
        assert_eq!(meta.as_string::<i32>().value(0), r#"{"a": [1, 2]}"#);
        let m = col("m");
        let m = m.as_string::<i32>();
        assert_eq!((m.value(0), m.value(1)), ("3", r#""th\"ree""#));
        let late = col("late");
        assert!(late.is_null(0));
        assert_eq!(late.as_string::<i32>().value(1), "only here");

        // A record that no longer fits (its file changed between the passes) appends nothing.
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"ok": 1}"#,
            r#"{"n": 2, "new": 1}"#,
            r#"{"x": "s"}"#,
        ] {
            let r = RawRecord::parse(bad.as_bytes()).expect("an object");
            assert!(t.append(&["i", "t"], &r).is_err(), "{bad}");
        }
        t.append(
            &["i", "t"],
            &RawRecord::parse(br#"{"n": 3}"#).expect("an object"),
        )
        .expect("fits");
        let b = t.take_batch();
        assert_eq!(b.num_rows(), 1);
        assert!(b.columns().iter().all(|c| c.len() == 1));
    }

    #[test]
    fn floats_past_f64_keep_their_text() {
        let s = infer(&[r#"{"big": 1e400, "ok": 1e300}"#]);
        assert_eq!(s.kind("big"), Some(Kind::Json));
        assert_eq!(s.kind("ok"), Some(Kind::Float));
    }
}
