//! JSON records → Arrow record batches, for writing JSONL input as Parquet.
//!
//! A first pass over the records infers one type per top-level field; a second pass fills the
//! columns. Nothing is lost: a field keeps a native type (bool, int64, float64, string) only when
//! every value fits it exactly, and is otherwise stored as the JSON text of each value (objects,
//! arrays, mixed kinds), which `DuckDB` reads back with its `json` functions. Absent and `null`
//! values are nulls.

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

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
    fn of(v: &Value) -> Kind {
        match v {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(n) if n.is_i64() => Kind::Int,
            // Above i64::MAX: float64 would round it.
            Value::Number(n) if n.is_u64() => Kind::Json,
            Value::Number(_) => Kind::Float,
            Value::String(_) => Kind::Str,
            Value::Array(_) | Value::Object(_) => Kind::Json,
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
    fn observe(&mut self, v: &Value) {
        if let Value::Number(n) = v
            && let Some(i) = n.as_i64()
        {
            self.max_abs_int = self.max_abs_int.max(i.unsigned_abs());
        }
        let seen = Kind::of(v);
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

    pub fn observe(&mut self, record: &Map<String, Value>) {
        for (name, v) in record {
            if self.pinned.contains(name) {
                continue;
            }
            self.fields
                .entry(name.clone())
                .or_insert_with(|| {
                    self.order.push(name.clone());
                    Inferred {
                        kind: Kind::Null,
                        max_abs_int: 0,
                    }
                })
                .observe(v);
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

    /// Append `v`, which the inference pass has seen; returns the bytes added (roughly).
    fn append(&mut self, v: &Value) -> usize {
        match (self, v) {
            (Column::Bool(b), _) => b.append_option(v.as_bool()),
            (Column::Int(b), _) => b.append_option(v.as_i64()),
            (Column::Float(b), _) => b.append_option(v.as_f64()),
            (Column::Str(b), Value::String(s)) => {
                b.append_value(s);
                return s.len();
            }
            (Column::Str(b), _) | (Column::Json(b), Value::Null) => b.append_null(),
            (Column::Json(b), _) => {
                let s = v.to_string();
                b.append_value(&s);
                return s.len();
            }
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
    /// # Panics
    /// If `record` has a field (or a value kind) the inference pass did not see.
    pub fn append(&mut self, pinned: &[&str], record: &Map<String, Value>) {
        let mut filled = vec![false; self.builders.len()];
        for (i, v) in pinned.iter().enumerate() {
            let Column::Str(b) = &mut self.builders[i] else {
                unreachable!("pinned columns are strings")
            };
            b.append_value(v);
            self.bytes += v.len();
            filled[i] = true;
        }
        for (name, v) in record {
            let i = self.index[name.as_str()];
            if i < self.pinned {
                continue;
            }
            self.bytes += self.builders[i].append(v);
            filled[i] = true;
        }
        for (b, done) in self.builders.iter_mut().zip(filled) {
            if !done {
                b.append_null();
            }
        }
        self.rows += 1;
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
    use serde_json::json;

    fn obj(v: &Value) -> Map<String, Value> {
        v.as_object().expect("an object").clone()
    }

    fn infer(records: &[Value]) -> SchemaInference {
        let mut s = SchemaInference::new(&["id", "text"]);
        for r in records {
            s.observe(&obj(r));
        }
        s
    }

    #[test]
    fn kinds_widen_only_as_far_as_exact() {
        let s = infer(&[
            json!({"a": 1, "b": 1, "c": "x", "d": true, "e": null, "f": [1], "g": 1, "h": 1}),
            json!({"a": 2, "b": 2.5, "c": null, "d": false, "f": {"k": 1}, "g": "1", "h": 9_007_199_254_740_993_i64}),
            json!({"b": null, "h": 0.5}),
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
        assert_eq!(
            infer(&[json!({"u": 18_446_744_073_709_551_615_u64})]).kind("u"),
            Some(Kind::Json)
        );
    }

    #[test]
    fn batches_hold_every_value() {
        let records = [
            json!({"id": 7, "text": "ignored", "n": 1, "x": 0.5, "ok": true, "meta": {"a": [1, 2]}, "m": 3}),
            json!({"m": "three", "n": -4, "late": "only here"}),
        ];
        let mut s = SchemaInference::new(&["id", "text"]);
        for r in &records {
            s.observe(&obj(r));
        }
        let mut t = s.finish();
        let names: Vec<String> = t
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["id", "text", "n", "x", "ok", "meta", "m", "late"]);
        t.append(&["7", "first"], &obj(&records[0]));
        t.append(&["f.jsonl:2", "second"], &obj(&records[1]));
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
        assert!((x.as_primitive::<Float64Type>().value(0) - 0.5).abs() < f64::EPSILON);
        assert!(x.is_null(1));
        let ok = col("ok");
        let ok: &BooleanArray = ok.as_boolean();
        assert!(ok.value(0) && ok.is_null(1));
        let meta = col("meta");
        assert_eq!(meta.as_string::<i32>().value(0), r#"{"a":[1,2]}"#);
        let m = col("m");
        let m = m.as_string::<i32>();
        assert_eq!((m.value(0), m.value(1)), ("3", r#""three""#));
        let late = col("late");
        assert!(late.is_null(0));
        assert_eq!(late.as_string::<i32>().value(1), "only here");
    }
}
