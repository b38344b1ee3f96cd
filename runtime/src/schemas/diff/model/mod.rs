//! A schema document read into the shapes the comparison works on.
//!
//! JSON Schema lets one object carry keywords for several kinds of value at
//! once (`{"type": "string", "enum": [..]}`) or none (`{"properties": ..}`
//! without `type`). Like Confluent's checker, each object is split into its
//! parts (enum, combinators, not, const, one part per type) and an object with
//! several parts becomes a synthetic `allOf` of them, so that dropping one
//! constraint reads as `PRODUCT_TYPE_NARROWED` rather than a type change.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

mod loader;

use super::refs;
use super::{DiffError, Side};
use loader::Loader;

pub(super) type Id = usize;

/// The node every unresolvable cycle of `$ref`s collapses to.
pub(super) const EMPTY: Id = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Criterion {
    All,
    Any,
    One,
}

impl Criterion {
    pub(super) fn keyword(self) -> &'static str {
        match self {
            Criterion::All => "allOf",
            Criterion::Any => "anyOf",
            Criterion::One => "oneOf",
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Meta {
    pub(super) id: Option<String>,
    pub(super) title: Option<String>,
    pub(super) description: Option<String>,
    pub(super) default: Option<Value>,
}

#[derive(Debug, Default)]
pub(super) struct StringSchema {
    pub(super) min_length: Option<u64>,
    pub(super) max_length: Option<u64>,
    pub(super) pattern: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct NumberSchema {
    pub(super) integer: bool,
    pub(super) minimum: Option<Num>,
    pub(super) maximum: Option<Num>,
    pub(super) exclusive_minimum: Option<Num>,
    pub(super) exclusive_maximum: Option<Num>,
    pub(super) multiple_of: Option<f64>,
}

/// A bound as written, compared exactly: integers as integers, so that
/// `u64::MAX` and `u64::MAX - 1` (one `f64` apart from nothing) differ.
#[derive(Debug, Clone)]
pub(super) struct Num(pub(super) serde_json::Number);

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.partial_cmp(other) == Some(std::cmp::Ordering::Equal)
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        crate::schemas::portable::compare(&self.0, &other.0)
    }
}

#[derive(Debug)]
pub(super) struct PatternProperty {
    pub(super) regex: Option<Regex>,
    pub(super) schema: Id,
}

#[derive(Debug)]
pub(super) struct ObjectSchema {
    pub(super) properties: Vec<(String, Id)>,
    pub(super) required: Vec<String>,
    pub(super) pattern_properties: Vec<PatternProperty>,
    /// `false` only for `additionalProperties: false`.
    pub(super) permits_additional: bool,
    /// The schema of `additionalProperties` when it is one.
    pub(super) additional: Option<Id>,
    pub(super) unevaluated: Option<Id>,
    pub(super) property_dependencies: Vec<(String, Vec<String>)>,
    pub(super) schema_dependencies: Vec<(String, Id)>,
    pub(super) min_properties: Option<u64>,
    pub(super) max_properties: Option<u64>,
}

#[derive(Debug)]
pub(super) struct ArraySchema {
    /// `items` as one schema for every item.
    pub(super) all_items: Option<Id>,
    /// The tuple: `prefixItems`, or draft-07 array-form `items`.
    pub(super) item_list: Vec<Id>,
    /// `false` only when items past the tuple are forbidden.
    pub(super) permits_additional: bool,
    /// The schema of items past the tuple when it is one.
    pub(super) additional: Option<Id>,
    pub(super) unevaluated: Option<Id>,
    pub(super) min_items: Option<u64>,
    pub(super) max_items: Option<u64>,
    pub(super) unique_items: bool,
    pub(super) min_contains: Option<u64>,
    pub(super) max_contains: Option<u64>,
}

#[derive(Debug)]
pub(super) enum Kind {
    /// `true`, `{}`, or an object with annotations only.
    Empty,
    False,
    Ref(Id),
    /// A part that could not be read; compared by its JSON text.
    Opaque,
    Boolean,
    Null,
    String(StringSchema),
    Number(NumberSchema),
    Object(ObjectSchema),
    Array(ArraySchema),
    Enum(Vec<Value>),
    Const(Value),
    Combined {
        criterion: Criterion,
        subschemas: Vec<Id>,
        /// Made from one object's several parts, not written as a combinator:
        /// its subschemas live at the object's own pointer.
        synthetic: bool,
    },
    Not(Id),
    Conditional {
        condition: Option<Id>,
        then: Option<Id>,
        otherwise: Option<Id>,
    },
}

#[derive(Debug)]
pub(super) struct Node {
    pub(super) meta: Meta,
    pub(super) kind: Kind,
    /// Identity for collapsing duplicate subschemas: the JSON it was read
    /// from and, for a part of an object, which part.
    pub(super) source: (Value, &'static str),
}

impl Node {
    fn new(kind: Kind, source: (Value, &'static str)) -> Self {
        Node {
            meta: Meta::default(),
            kind,
            source,
        }
    }
}

/// Both documents' nodes, in one arena so that either side's nodes can be
/// compared with the other's in both directions (`not` swaps them).
#[derive(Debug)]
pub(super) struct Arena {
    pub(super) nodes: Vec<Node>,
    pub(super) modern: [bool; 2],
}

impl Arena {
    pub(super) fn node(&self, id: Id) -> &Node {
        &self.nodes[id]
    }

    /// Follows `$ref`s to the schema they name; a cycle of bare references
    /// means nothing and reads as the empty schema.
    pub(super) fn deref(&self, mut id: Id) -> Id {
        for _ in 0..=self.nodes.len() {
            match self.nodes[id].kind {
                Kind::Ref(target) => id = target,
                _ => return id,
            }
        }
        EMPTY
    }
}

const OBJECT_KEYWORDS: &[&str] = &[
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
];
const ARRAY_KEYWORDS: &[&str] = &[
    "items",
    "prefixItems",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedItems",
];
const NUMBER_KEYWORDS: &[&str] = &[
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];
const STRING_KEYWORDS: &[&str] = &["minLength", "maxLength", "pattern", "format"];

/// Reads both documents. Parts that cannot be read become [`Kind::Opaque`]
/// and are listed in the returned errors.
pub(super) fn load(old: &Value, new: &Value) -> (Arena, Id, Id, Vec<DiffError>) {
    let mut loader = Loader {
        docs: [old, new],
        nodes: vec![Node::new(Kind::Empty, (Value::Bool(true), ""))],
        index: HashMap::new(),
        errors: Vec::new(),
    };
    let old_root = loader.at(Side::Old, "");
    let new_root = loader.at(Side::New, "");
    let arena = Arena {
        nodes: loader.nodes,
        modern: [is_modern(old), is_modern(new)],
    };
    (arena, old_root, new_root, loader.errors)
}

/// Whether the document declares draft 2019-09 or later, where `$ref` sits
/// beside other keywords, `items` means what draft-07's `additionalItems`
/// meant next to `prefixItems`, and `$id` is an address, not an annotation.
fn is_modern(doc: &Value) -> bool {
    doc.get("$schema")
        .and_then(Value::as_str)
        .is_some_and(|s| s.contains("2019-09") || s.contains("2020-12"))
}
