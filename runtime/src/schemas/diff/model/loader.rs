//! The reading of two schema documents into one [`Arena`]: `$ref`s resolved
//! (with a cycle collapsing to [`EMPTY`]), each object split into its parts,
//! every malformed keyword reported as a [`DiffError`] instead of a panic.

use super::*;

pub(super) struct Loader<'a> {
    pub(super) docs: [&'a Value; 2],
    pub(super) nodes: Vec<Node>,
    pub(super) index: HashMap<(Side, String), Id>,
    pub(super) errors: Vec<DiffError>,
}

impl Loader<'_> {
    fn doc(&self, side: Side) -> &Value {
        match side {
            Side::Old => self.docs[0],
            Side::New => self.docs[1],
        }
    }

    fn modern(&self, side: Side) -> bool {
        is_modern(self.doc(side))
    }

    fn push(&mut self, node: Node) -> Id {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn error(&mut self, side: Side, pointer: &str, reason: impl Into<String>) {
        self.errors.push(DiffError::Invalid {
            side,
            pointer: format!("#{pointer}"),
            reason: reason.into(),
        });
    }

    /// The node for the schema at `pointer`, read once: a second visit (a
    /// recursive `$ref`) gets the same id, which is what ends cycles.
    pub(super) fn at(&mut self, side: Side, pointer: &str) -> Id {
        if let Some(&id) = self.index.get(&(side, pointer.to_owned())) {
            return id;
        }
        let id = self.push(Node::new(Kind::Empty, (Value::Null, "")));
        self.index.insert((side, pointer.to_owned()), id);
        let value = refs::lookup(self.doc(side), pointer)
            .cloned()
            .unwrap_or(Value::Null);
        let node = self.read(side, pointer, &value);
        self.nodes[id] = node;
        id
    }

    fn opaque(&mut self, side: Side, pointer: &str, value: &Value, reason: String) -> Node {
        self.error(side, pointer, reason);
        Node::new(Kind::Opaque, (value.clone(), ""))
    }

    fn read(&mut self, side: Side, pointer: &str, value: &Value) -> Node {
        match value {
            Value::Bool(true) => Node::new(Kind::Empty, (value.clone(), "")),
            Value::Bool(false) => Node::new(Kind::False, (value.clone(), "")),
            Value::Object(map) => self.read_object(side, pointer, value, map),
            other => self.opaque(
                side,
                pointer,
                value,
                format!(
                    "a schema must be an object or a boolean, found {}",
                    json_kind(other)
                ),
            ),
        }
    }

    fn read_object(
        &mut self,
        side: Side,
        pointer: &str,
        value: &Value,
        map: &Map<String, Value>,
    ) -> Node {
        let mut parts = Vec::new();
        if let Some(reference) = map.get("$ref") {
            let target = match reference.as_str() {
                None => {
                    let reason = format!("`$ref` must be a string, found {}", json_kind(reference));
                    return self.opaque(side, pointer, value, reason);
                }
                Some(text) => match refs::resolve(self.doc(side), text) {
                    Ok(target) => self.at(side, &target),
                    Err(reason) => {
                        return self.opaque(side, &refs::child(pointer, "$ref"), value, reason)
                    }
                },
            };
            // Before 2019-09 a `$ref` replaces every keyword beside it.
            if !self.modern(side) {
                return Node::new(Kind::Ref(target), (value.clone(), ""));
            }
            parts.push(self.push(Node::new(Kind::Ref(target), (value.clone(), "$ref"))));
        }
        self.read_parts(side, pointer, value, map, &mut parts);
        let kind = match parts.len() {
            0 => Kind::Empty,
            1 => {
                let only = parts.pop().unwrap_or(EMPTY);
                std::mem::replace(&mut self.nodes[only].kind, Kind::Empty)
            }
            _ => Kind::Combined {
                criterion: Criterion::All,
                subschemas: parts,
                synthetic: true,
            },
        };
        let mut node = Node::new(kind, (value.clone(), ""));
        node.meta = self.read_meta(side, pointer, map);
        node
    }

    fn read_meta(&mut self, side: Side, pointer: &str, map: &Map<String, Value>) -> Meta {
        Meta {
            id: self.opt_string(side, pointer, map, "$id"),
            title: self.opt_string(side, pointer, map, "title"),
            description: self.opt_string(side, pointer, map, "description"),
            default: map.get("default").cloned(),
        }
    }

    fn read_parts(
        &mut self,
        side: Side,
        pointer: &str,
        value: &Value,
        map: &Map<String, Value>,
        parts: &mut Vec<Id>,
    ) {
        let source = |tag| (value.clone(), tag);
        if let Some(values) = map.get("enum") {
            match values.as_array() {
                Some(values) => {
                    let node = Node::new(Kind::Enum(values.clone()), source("enum"));
                    parts.push(self.push(node));
                }
                None => self.error(
                    side,
                    &refs::child(pointer, "enum"),
                    "`enum` must be an array",
                ),
            }
        }
        for criterion in [Criterion::All, Criterion::Any, Criterion::One] {
            let keyword = criterion.keyword();
            let Some(list) = map.get(keyword) else {
                continue;
            };
            let at = refs::child(pointer, keyword);
            match list.as_array() {
                Some(list) if !list.is_empty() => {
                    let subschemas = (0..list.len())
                        .map(|i| self.at(side, &refs::child(&at, &i.to_string())))
                        .collect();
                    let kind = Kind::Combined {
                        criterion,
                        subschemas,
                        synthetic: false,
                    };
                    parts.push(self.push(Node::new(kind, source(keyword))));
                }
                _ => self.error(
                    side,
                    &at,
                    format!("`{keyword}` must be a non-empty array of schemas"),
                ),
            }
        }
        if map.contains_key("not") {
            let inner = self.at(side, &refs::child(pointer, "not"));
            parts.push(self.push(Node::new(Kind::Not(inner), source("not"))));
        }
        if let Some(constant) = map.get("const") {
            parts.push(self.push(Node::new(Kind::Const(constant.clone()), source("const"))));
        }
        match map.get("type") {
            Some(Value::String(name)) => {
                if let Some(id) = self.typed(side, pointer, value, map, name) {
                    parts.push(id);
                }
            }
            Some(Value::Array(names)) => {
                let mut typed = Vec::new();
                for name in names {
                    match name.as_str() {
                        Some(name) => typed.extend(self.typed(side, pointer, value, map, name)),
                        None => self.error(
                            side,
                            &refs::child(pointer, "type"),
                            "`type` entries must be strings",
                        ),
                    }
                }
                match typed.len() {
                    0 => {}
                    1 => parts.extend(typed),
                    _ => {
                        let kind = Kind::Combined {
                            criterion: Criterion::Any,
                            subschemas: typed,
                            synthetic: true,
                        };
                        parts.push(self.push(Node::new(kind, source("type"))));
                    }
                }
            }
            Some(_) => self.error(
                side,
                &refs::child(pointer, "type"),
                "`type` must be a string or an array of strings",
            ),
            // Without `type`, the keywords present say which kinds of value are constrained.
            None => {
                let has = |words: &[&str]| words.iter().any(|w| map.contains_key(*w));
                if has(OBJECT_KEYWORDS) {
                    let kind = Kind::Object(self.object(side, pointer, map));
                    parts.push(self.push(Node::new(kind, source("object"))));
                }
                if has(ARRAY_KEYWORDS) {
                    let kind = Kind::Array(self.array(side, pointer, map));
                    parts.push(self.push(Node::new(kind, source("array"))));
                }
                if has(NUMBER_KEYWORDS) {
                    let kind = Kind::Number(self.number(side, pointer, map, false));
                    parts.push(self.push(Node::new(kind, source("number"))));
                }
                if has(STRING_KEYWORDS) {
                    let kind = Kind::String(self.string(side, pointer, map));
                    parts.push(self.push(Node::new(kind, source("string"))));
                }
            }
        }
        if map.contains_key("if") {
            let sub = |this: &mut Self, key: &str| {
                map.contains_key(key)
                    .then(|| this.at(side, &refs::child(pointer, key)))
            };
            let kind = Kind::Conditional {
                condition: sub(self, "if"),
                then: sub(self, "then"),
                otherwise: sub(self, "else"),
            };
            parts.push(self.push(Node::new(kind, source("if"))));
        }
    }

    fn typed(
        &mut self,
        side: Side,
        pointer: &str,
        value: &Value,
        map: &Map<String, Value>,
        name: &str,
    ) -> Option<Id> {
        let (kind, tag) = match name {
            "string" => (Kind::String(self.string(side, pointer, map)), "string"),
            "integer" => (
                Kind::Number(self.number(side, pointer, map, true)),
                "integer",
            ),
            "number" => (
                Kind::Number(self.number(side, pointer, map, false)),
                "number",
            ),
            "object" => (Kind::Object(self.object(side, pointer, map)), "object"),
            "array" => (Kind::Array(self.array(side, pointer, map)), "array"),
            "boolean" => (Kind::Boolean, "boolean"),
            "null" => (Kind::Null, "null"),
            other => {
                self.error(
                    side,
                    &refs::child(pointer, "type"),
                    format!("unknown type `{other}`; expected one of string, integer, number, object, array, boolean, null"),
                );
                return None;
            }
        };
        Some(self.push(Node::new(kind, (value.clone(), tag))))
    }

    fn string(&mut self, side: Side, pointer: &str, map: &Map<String, Value>) -> StringSchema {
        StringSchema {
            min_length: self.count(side, pointer, map, "minLength"),
            max_length: self.count(side, pointer, map, "maxLength"),
            pattern: self.opt_string(side, pointer, map, "pattern"),
        }
    }

    fn number(
        &mut self,
        side: Side,
        pointer: &str,
        map: &Map<String, Value>,
        integer: bool,
    ) -> NumberSchema {
        let mut minimum = self.num(side, pointer, map, "minimum");
        let mut maximum = self.num(side, pointer, map, "maximum");
        // Draft-04 spells an exclusive bound as a flag on `minimum`/`maximum`.
        let mut exclusive = |key: &str, bound: &mut Option<Num>| match map.get(key) {
            Some(Value::Bool(true)) => bound.take(),
            Some(Value::Bool(false)) | None => None,
            Some(_) => self.num(side, pointer, map, key),
        };
        let exclusive_minimum = exclusive("exclusiveMinimum", &mut minimum);
        let exclusive_maximum = exclusive("exclusiveMaximum", &mut maximum);
        let multiple_of = self
            .num(side, pointer, map, "multipleOf")
            .and_then(|n| n.0.as_f64());
        if multiple_of.is_some_and(|m| m <= 0.0) {
            self.error(
                side,
                &refs::child(pointer, "multipleOf"),
                "`multipleOf` must be greater than 0",
            );
        }
        NumberSchema {
            integer,
            minimum,
            maximum,
            exclusive_minimum,
            exclusive_maximum,
            multiple_of: multiple_of.filter(|m| *m > 0.0),
        }
    }

    fn object(&mut self, side: Side, pointer: &str, map: &Map<String, Value>) -> ObjectSchema {
        let properties = self.schema_map(side, pointer, map, "properties");
        let required = match map.get("required") {
            None => Vec::new(),
            Some(Value::Array(names)) if names.iter().all(Value::is_string) => names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
            Some(_) => {
                self.error(
                    side,
                    &refs::child(pointer, "required"),
                    "`required` must be an array of strings",
                );
                Vec::new()
            }
        };
        let pattern_properties = self
            .schema_map(side, pointer, map, "patternProperties")
            .into_iter()
            .map(|(pattern, schema)| PatternProperty {
                // A pattern this engine cannot compile matches nothing, so a
                // property it would have covered counts as uncovered: the
                // cautious reading.
                regex: Regex::new(&pattern).ok(),
                schema,
            })
            .collect();
        let (permits_additional, additional) =
            self.open_part(side, pointer, map, "additionalProperties");
        let unevaluated = self.opt_schema(side, pointer, map, "unevaluatedProperties");

        let mut property_dependencies = Vec::new();
        let mut schema_dependencies = Vec::new();
        for keyword in ["dependencies", "dependentRequired", "dependentSchemas"] {
            let Some(entries) = map.get(keyword) else {
                continue;
            };
            let at = refs::child(pointer, keyword);
            let Some(entries) = entries.as_object() else {
                self.error(side, &at, format!("`{keyword}` must be an object"));
                continue;
            };
            for (name, entry) in entries {
                match entry {
                    Value::Array(names)
                        if keyword != "dependentSchemas" && names.iter().all(Value::is_string) =>
                    {
                        let names = names
                            .iter()
                            .filter_map(|n| n.as_str().map(str::to_owned))
                            .collect();
                        property_dependencies.push((name.clone(), names));
                    }
                    Value::Object(_) | Value::Bool(_) if keyword != "dependentRequired" => {
                        let id = self.at(side, &refs::child(&at, name));
                        schema_dependencies.push((name.clone(), id));
                    }
                    _ => self.error(
                        side,
                        &refs::child(&at, name),
                        format!("`{keyword}` entry has the wrong shape"),
                    ),
                }
            }
        }
        ObjectSchema {
            properties,
            required,
            pattern_properties,
            permits_additional,
            additional,
            unevaluated,
            property_dependencies,
            schema_dependencies,
            min_properties: self.count(side, pointer, map, "minProperties"),
            max_properties: self.count(side, pointer, map, "maxProperties"),
        }
    }

    fn array(&mut self, side: Side, pointer: &str, map: &Map<String, Value>) -> ArraySchema {
        let mut all_items = None;
        let mut item_list = Vec::new();
        let (mut permits_additional, mut additional) =
            self.open_part(side, pointer, map, "additionalItems");
        let tuple = |this: &mut Self, keyword: &str, list: &[Value]| -> Vec<Id> {
            let at = refs::child(pointer, keyword);
            (0..list.len())
                .map(|i| this.at(side, &refs::child(&at, &i.to_string())))
                .collect()
        };
        if let Some(prefix) = map.get("prefixItems") {
            match prefix.as_array() {
                Some(list) => item_list = tuple(self, "prefixItems", list),
                None => self.error(
                    side,
                    &refs::child(pointer, "prefixItems"),
                    "`prefixItems` must be an array",
                ),
            }
        }
        match map.get("items") {
            None => {}
            Some(Value::Array(list)) => item_list = tuple(self, "items", list),
            // From 2019-09 on, `items` beside a tuple (or as a boolean) says
            // what may follow the tuple, which draft-07 said with `additionalItems`.
            Some(items)
                if map.contains_key("prefixItems") || (items.is_boolean() && self.modern(side)) =>
            {
                (permits_additional, additional) = self.open_part(side, pointer, map, "items");
            }
            Some(_) => all_items = Some(self.at(side, &refs::child(pointer, "items"))),
        }
        // Beside `contains`, an absent `minContains` means 1.
        let min_contains = self
            .count(side, pointer, map, "minContains")
            .or_else(|| map.contains_key("contains").then_some(1));
        ArraySchema {
            all_items,
            item_list,
            permits_additional,
            additional,
            unevaluated: self.opt_schema(side, pointer, map, "unevaluatedItems"),
            min_items: self.count(side, pointer, map, "minItems"),
            max_items: self.count(side, pointer, map, "maxItems"),
            unique_items: matches!(map.get("uniqueItems"), Some(Value::Bool(true))),
            min_contains,
            max_contains: self.count(side, pointer, map, "maxContains"),
        }
    }

    /// `additionalProperties`-like keywords: absent, `true` and `{}` permit
    /// anything, `false` nothing, a schema what it accepts.
    fn open_part(
        &mut self,
        side: Side,
        pointer: &str,
        map: &Map<String, Value>,
        key: &str,
    ) -> (bool, Option<Id>) {
        match map.get(key) {
            None | Some(Value::Bool(true)) => (true, None),
            Some(Value::Bool(false)) => (false, None),
            Some(Value::Object(schema)) if schema.is_empty() => (true, None),
            Some(_) => (true, Some(self.at(side, &refs::child(pointer, key)))),
        }
    }

    fn opt_schema(
        &mut self,
        side: Side,
        pointer: &str,
        map: &Map<String, Value>,
        key: &str,
    ) -> Option<Id> {
        map.contains_key(key)
            .then(|| self.at(side, &refs::child(pointer, key)))
    }

    fn schema_map(
        &mut self,
        side: Side,
        pointer: &str,
        map: &Map<String, Value>,
        key: &str,
    ) -> Vec<(String, Id)> {
        let at = refs::child(pointer, key);
        match map.get(key) {
            None => Vec::new(),
            Some(Value::Object(entries)) => entries
                .keys()
                .map(|name| (name.clone(), self.at(side, &refs::child(&at, name))))
                .collect(),
            Some(other) => {
                self.error(
                    side,
                    &at,
                    format!("`{key}` must be an object, found {}", json_kind(other)),
                );
                Vec::new()
            }
        }
    }

    fn opt_string(
        &mut self,
        side: Side,
        pointer: &str,
        map: &Map<String, Value>,
        key: &str,
    ) -> Option<String> {
        match map.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.error(
                    side,
                    &refs::child(pointer, key),
                    format!("`{key}` must be a string, found {}", json_kind(other)),
                );
                None
            }
        }
    }

    fn num(
        &mut self,
        side: Side,
        pointer: &str,
        map: &Map<String, Value>,
        key: &str,
    ) -> Option<Num> {
        match map.get(key) {
            None => None,
            Some(Value::Number(n)) => Some(Num(n.clone())),
            Some(other) => {
                self.error(
                    side,
                    &refs::child(pointer, key),
                    format!("`{key}` must be a number, found {}", json_kind(other)),
                );
                None
            }
        }
    }

    fn count(
        &mut self,
        side: Side,
        pointer: &str,
        map: &Map<String, Value>,
        key: &str,
    ) -> Option<u64> {
        match map.get(key) {
            None => None,
            Some(Value::Number(n)) => {
                let whole = n.as_u64().or_else(|| {
                    n.as_f64()
                        .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f <= u64::MAX as f64)
                        .map(|f| f as u64)
                });
                if whole.is_none() {
                    self.error(
                        side,
                        &refs::child(pointer, key),
                        format!("`{key}` must be a non-negative integer"),
                    );
                }
                whole
            }
            Some(other) => {
                self.error(
                    side,
                    &refs::child(pointer, key),
                    format!(
                        "`{key}` must be a non-negative integer, found {}",
                        json_kind(other)
                    ),
                );
                None
            }
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
