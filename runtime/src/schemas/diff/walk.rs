//! The recursive comparison of an older schema with a newer one.
//!
//! Every comparison returns its changes with paths relative to the pair being
//! compared; callers prefix them. That keeps results reusable: the result of
//! a pair is remembered, which stops the cross products of nested
//! `anyOf`/`oneOf` from growing exponentially, and a pair met again while it
//! is still being compared (a recursive `$ref`) counts as unchanged.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde_json::Value;

use super::change::ChangeType;
use super::change::ChangeType as T;
use super::model::{
    Arena, ArraySchema, Criterion, Id, Kind, NumberSchema, ObjectSchema, StringSchema,
};

/// A change with its path relative to the pair that produced it.
pub(super) type Rel = (ChangeType, Vec<String>);

pub(super) struct Walker<'a> {
    arena: &'a Arena,
    memo: HashMap<(Id, Id), Rc<Vec<Rel>>>,
    in_progress: HashSet<(Id, Id)>,
    /// From draft 2019-09 on `$id` is where a schema lives, not a
    /// description of it; changing it changes nothing a reader sees.
    ignore_id: bool,
}

fn compatible(diffs: &[Rel]) -> bool {
    diffs.iter().all(|(t, _)| t.is_backward_compatible())
}

/// Adds `sub` under the path `prefix`.
fn nest(out: &mut Vec<Rel>, prefix: &[&str], sub: impl IntoIterator<Item = Rel>) {
    for (kind, path) in sub {
        let mut full: Vec<String> = prefix.iter().map(|s| (*s).to_owned()).collect();
        full.extend(path);
        out.push((kind, full));
    }
}

fn add(out: &mut Vec<Rel>, prefix: &[&str], kind: ChangeType) {
    out.push((kind, prefix.iter().map(|s| (*s).to_owned()).collect()));
}

impl<'a> Walker<'a> {
    pub(super) fn new(arena: &'a Arena) -> Self {
        Walker {
            arena,
            memo: HashMap::new(),
            in_progress: HashSet::new(),
            ignore_id: arena.modern[0] && arena.modern[1],
        }
    }

    fn compare_opt(&mut self, a: Option<Id>, b: Option<Id>) -> Vec<Rel> {
        match (a, b) {
            (None, None) => Vec::new(),
            (None, Some(_)) => vec![(T::SchemaAdded, Vec::new())],
            (Some(_), None) => vec![(T::SchemaRemoved, Vec::new())],
            (Some(a), Some(b)) => self.compare(a, b),
        }
    }

    /// Every change from `a` (older) to `b` (newer).
    pub(super) fn compare(&mut self, a: Id, b: Id) -> Vec<Rel> {
        let key = (self.arena.deref(a), self.arena.deref(b));
        if let Some(done) = self.memo.get(&key) {
            return done.as_ref().clone();
        }
        if !self.in_progress.insert(key) {
            return Vec::new();
        }
        let result = self.compare_resolved(key.0, key.1);
        self.in_progress.remove(&key);
        self.memo.insert(key, Rc::new(result.clone()));
        result
    }

    fn compare_resolved(&mut self, a: Id, b: Id) -> Vec<Rel> {
        let arena = self.arena;
        let (na, nb) = (arena.node(a), arena.node(b));
        let mut out = Vec::new();

        if matches!(na.kind, Kind::Opaque) || matches!(nb.kind, Kind::Opaque) {
            if na.source.0 != nb.source.0 {
                add(&mut out, &[], T::TypeChanged);
            }
            return out;
        }

        // A plain schema against a combinator, or the reverse: a union that
        // still holds the old schema, or an `allOf` that lost constraints.
        match (&na.kind, &nb.kind) {
            (Kind::Combined { .. }, Kind::Combined { .. }) => {}
            (
                _,
                Kind::Combined {
                    criterion,
                    subschemas,
                    ..
                },
            ) => {
                if subschemas.len() == 1 {
                    let sub = self.compare(a, subschemas[0]);
                    if compatible(&sub) {
                        return sub;
                    }
                } else if *criterion != Criterion::All {
                    for &s in subschemas {
                        let sub = self.compare(a, s);
                        if compatible(&sub) {
                            out.extend(sub);
                            add(&mut out, &[], T::SumTypeExtended);
                            return out;
                        }
                    }
                }
            }
            (
                Kind::Combined {
                    criterion,
                    subschemas,
                    ..
                },
                _,
            ) => {
                if subschemas.len() == 1 {
                    let sub = self.compare(subschemas[0], b);
                    if compatible(&sub) {
                        return sub;
                    }
                }
                if *criterion == Criterion::All {
                    for &s in subschemas {
                        let sub = self.compare(s, b);
                        if compatible(&sub) {
                            out.extend(sub);
                            add(&mut out, &[], T::ProductTypeNarrowed);
                            return out;
                        }
                    }
                }
            }
            _ => {}
        }

        if std::mem::discriminant(&na.kind) != std::mem::discriminant(&nb.kind) {
            // `false` accepted nothing, and the empty schema accepts anything.
            if !matches!(na.kind, Kind::False) && !matches!(nb.kind, Kind::Empty) {
                add(&mut out, &[], T::TypeChanged);
            }
            return out;
        }

        if !self.ignore_id && na.meta.id != nb.meta.id {
            add(&mut out, &[], T::IdChanged);
        }
        if na.meta.title != nb.meta.title {
            add(&mut out, &[], T::TitleChanged);
        }
        if na.meta.description != nb.meta.description {
            add(&mut out, &[], T::DescriptionChanged);
        }
        if na.meta.default != nb.meta.default {
            add(&mut out, &[], T::DefaultChanged);
        }

        match (&na.kind, &nb.kind) {
            (Kind::String(x), Kind::String(y)) => string(&mut out, x, y),
            (Kind::Number(x), Kind::Number(y)) => number(&mut out, x, y),
            (Kind::Enum(x), Kind::Enum(y)) => enumeration(&mut out, x, y),
            (Kind::Const(x), Kind::Const(y)) if x != y => {
                add(&mut out, &["const"], T::EnumArrayChanged);
            }
            (
                Kind::Combined {
                    criterion: ca,
                    subschemas: sa,
                    synthetic,
                },
                Kind::Combined {
                    criterion: cb,
                    subschemas: sb,
                    synthetic: synthetic_b,
                },
            ) => self.combined(&mut out, (*ca, sa, *synthetic), (*cb, sb, *synthetic_b)),
            (Kind::Not(x), Kind::Not(y)) => {
                // What `not` rejects shrinking means the schema accepts more.
                let sub = self.compare(*y, *x);
                if !sub.is_empty() {
                    let kind = if compatible(&sub) {
                        T::NotTypeNarrowed
                    } else {
                        T::NotTypeExtended
                    };
                    add(&mut out, &["not"], kind);
                }
            }
            (Kind::Object(x), Kind::Object(y)) => self.object(&mut out, x, y),
            (Kind::Array(x), Kind::Array(y)) => self.array(&mut out, x, y),
            (
                Kind::Conditional {
                    condition: ia,
                    then: ta,
                    otherwise: ea,
                },
                Kind::Conditional {
                    condition: ib,
                    then: tb,
                    otherwise: eb,
                },
            ) => {
                // Moving the condition moves data between branches, so any
                // change to it is a change of the whole construct.
                if !self.compare_opt(*ia, *ib).is_empty() {
                    add(&mut out, &["if"], T::CombinedTypeChanged);
                }
                let then = self.compare_opt(*ta, *tb);
                nest(&mut out, &["then"], then);
                let otherwise = self.compare_opt(*ea, *eb);
                nest(&mut out, &["else"], otherwise);
            }
            _ => {}
        }
        out
    }

    fn combined(
        &mut self,
        out: &mut Vec<Rel>,
        (ca, sa, synthetic): (Criterion, &[Id], bool),
        (cb, sb, synthetic_b): (Criterion, &[Id], bool),
    ) {
        let criterion_change = if ca == cb {
            None
        } else if cb == Criterion::Any
            || (cb == Criterion::One && (sa.len() == 1 || ca == Criterion::All))
            || (cb == Criterion::All && sa.len() == 1 && sb.len() == 1)
        {
            Some(T::CombinedTypeExtended)
        } else {
            Some(T::CombinedTypeChanged)
        };
        if let Some(kind) = criterion_change {
            add(out, &[], kind);
            if kind == T::CombinedTypeChanged {
                return;
            }
        }

        let sa = self.distinct(sa);
        let sb = self.distinct(sb);
        if sa.len() < sb.len() {
            let kind = if cb == Criterion::All {
                T::ProductTypeExtended
            } else {
                T::SumTypeExtended
            };
            add(out, &[], kind);
        } else if sa.len() > sb.len() {
            let kind = if ca == Criterion::All {
                T::ProductTypeNarrowed
            } else {
                T::SumTypeNarrowed
            };
            add(out, &[], kind);
        }

        // Which old subschema may become which new one, and the changes if so.
        let mut edges: Vec<Vec<(usize, Vec<Rel>)>> = Vec::with_capacity(sa.len());
        for (i, &x) in sa.iter().enumerate() {
            let index = i.to_string();
            let prefix: Vec<&str> = if synthetic {
                Vec::new()
            } else {
                vec![ca.keyword(), &index]
            };
            let mut row = Vec::new();
            for (j, &y) in sb.iter().enumerate() {
                let sub = self.compare(x, y);
                if compatible(&sub) {
                    let mut nested = Vec::new();
                    nest(&mut nested, &prefix, sub);
                    row.push((j, nested));
                }
            }
            edges.push(row);
        }
        let matching = maximum_matching(&edges, sb.len());
        let mut matched = 0;
        for (i, j) in matching.iter().enumerate() {
            if let Some(j) = j {
                matched += 1;
                if let Some((_, diffs)) = edges[i].iter().find(|(k, _)| k == j) {
                    out.extend(diffs.iter().cloned());
                }
            }
        }
        if matched < sa.len().min(sb.len()) {
            // Parts of one object (its enum, its type) pair up by what they
            // are: say what broke in them, not only that something did.
            if synthetic && synthetic_b {
                let taken: Vec<usize> = matching.iter().flatten().copied().collect();
                for (i, &x) in sa.iter().enumerate() {
                    if matching[i].is_some() {
                        continue;
                    }
                    let tag = self.arena.node(x).source.1;
                    let partner = sb
                        .iter()
                        .enumerate()
                        .find(|(j, y)| !taken.contains(j) && self.arena.node(**y).source.1 == tag);
                    if let Some((_, &y)) = partner {
                        let sub = self.compare(x, y);
                        out.extend(sub);
                    }
                }
            }
            add(out, &[], T::CombinedTypeSubschemasChanged);
        }
    }

    /// The subschemas with duplicates (same JSON) dropped, first kept.
    fn distinct(&self, ids: &[Id]) -> Vec<Id> {
        let mut seen: Vec<&(Value, &'static str)> = Vec::new();
        let mut out = Vec::new();
        for &id in ids {
            let source = &self.arena.node(id).source;
            if !seen.contains(&source) {
                seen.push(source);
                out.push(id);
            }
        }
        out
    }

    fn object(&mut self, out: &mut Vec<Rel>, a: &ObjectSchema, b: &ObjectSchema) {
        let lookup = |o: &ObjectSchema, name: &str| {
            o.properties
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, id)| *id)
        };
        let required = |o: &ObjectSchema, name: &str| o.required.iter().any(|r| r == name);
        let has_default = |id: Id| self.arena.node(self.arena.deref(id)).meta.default.is_some();

        for (name, _) in &a.properties {
            let Some(new_schema) = lookup(b, name) else {
                continue;
            };
            match (required(a, name), required(b, name)) {
                (true, false) => add(out, &["required", name], T::RequiredAttributeRemoved),
                (false, true) => {
                    let kind = if has_default(new_schema) {
                        T::RequiredAttributeWithDefaultAdded
                    } else {
                        T::RequiredAttributeAdded
                    };
                    add(out, &["required", name], kind);
                }
                _ => {}
            }
        }

        let mut names: Vec<&String> = a.properties.iter().map(|(n, _)| n).collect();
        names.extend(
            b.properties
                .iter()
                .map(|(n, _)| n)
                .filter(|n| lookup(a, n).is_none()),
        );
        for name in names {
            let at = ["properties", name.as_str()];
            match (lookup(a, name), lookup(b, name)) {
                (Some(x), Some(y)) => {
                    let sub = self.compare(x, y);
                    nest(out, &at, sub);
                }
                (Some(x), None) => {
                    if object_is_open(self.arena, b) {
                        add(out, &at, T::PropertyRemovedFromOpenContentModel);
                    } else if let Some(cover) = object_cover(self.arena, b, name) {
                        let sub = self.compare(x, cover);
                        let kind = if compatible(&sub) {
                            T::PropertyRemovedIsCoveredByPartiallyOpenContentModel
                        } else {
                            T::PropertyRemovedNotCoveredByPartiallyOpenContentModel
                        };
                        nest(out, &at, sub);
                        add(out, &at, kind);
                    } else if matches!(self.arena.node(self.arena.deref(x)).kind, Kind::False) {
                        add(out, &at, T::PropertyWithFalseRemovedFromClosedContentModel);
                    } else {
                        add(out, &at, T::PropertyRemovedFromClosedContentModel);
                    }
                }
                (None, Some(y)) => {
                    let is_required = required(b, name);
                    if object_is_open(self.arena, a) {
                        let kind =
                            if matches!(self.arena.node(self.arena.deref(y)).kind, Kind::Empty) {
                                T::PropertyWithEmptySchemaAddedToOpenContentModel
                            } else if is_required && has_default(y) {
                                T::RequiredPropertyWithDefaultAddedToOpenContentModel
                            } else if is_required {
                                T::RequiredPropertyAddedToOpenContentModel
                            } else {
                                T::OptionalPropertyAddedToOpenContentModel
                            };
                        add(out, &at, kind);
                    } else {
                        if let Some(cover) = object_cover(self.arena, a, name) {
                            let sub = self.compare(cover, y);
                            let kind = if compatible(&sub) {
                                T::PropertyAddedIsCoveredByPartiallyOpenContentModel
                            } else {
                                T::PropertyAddedNotCoveredByPartiallyOpenContentModel
                            };
                            nest(out, &at, sub);
                            add(out, &at, kind);
                        }
                        let kind = if is_required && has_default(y) {
                            T::RequiredPropertyWithDefaultAddedToUnopenContentModel
                        } else if is_required {
                            T::RequiredPropertyAddedToUnopenContentModel
                        } else {
                            T::OptionalPropertyAddedToUnopenContentModel
                        };
                        add(out, &at, kind);
                    }
                }
                (None, None) => {}
            }
        }

        self.dependencies(out, a, b);

        let additional = self.open_part(
            (a.permits_additional, a.additional),
            (b.permits_additional, b.additional),
            [
                T::AdditionalPropertiesAdded,
                T::AdditionalPropertiesRemoved,
                T::AdditionalPropertiesNarrowed,
                T::AdditionalPropertiesExtended,
            ],
        );
        nest(out, &["additionalProperties"], additional);
        let unevaluated = self.unevaluated(
            a.unevaluated,
            b.unevaluated,
            [
                T::UnevaluatedPropertiesAdded,
                T::UnevaluatedPropertiesRemoved,
                T::UnevaluatedPropertiesNarrowed,
                T::UnevaluatedPropertiesExtended,
            ],
        );
        nest(out, &["unevaluatedProperties"], unevaluated);

        bound(
            out,
            "maxProperties",
            a.max_properties,
            b.max_properties,
            T::MaxPropertiesAdded,
            T::MaxPropertiesRemoved,
            T::MaxPropertiesIncreased,
            T::MaxPropertiesDecreased,
        );
        bound(
            out,
            "minProperties",
            a.min_properties,
            b.min_properties,
            T::MinPropertiesAdded,
            T::MinPropertiesRemoved,
            T::MinPropertiesIncreased,
            T::MinPropertiesDecreased,
        );
    }

    fn dependencies(&mut self, out: &mut Vec<Rel>, a: &ObjectSchema, b: &ObjectSchema) {
        let mut names: Vec<&String> = a.property_dependencies.iter().map(|(n, _)| n).collect();
        names.extend(b.property_dependencies.iter().map(|(n, _)| n));
        let mut seen = HashSet::new();
        for name in names {
            if !seen.insert(name) {
                continue;
            }
            let old: Option<HashSet<&String>> = a
                .property_dependencies
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.iter().collect());
            let new: Option<HashSet<&String>> = b
                .property_dependencies
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.iter().collect());
            let at = ["dependencies", name.as_str()];
            match (old, new) {
                (Some(_), None) => add(out, &at, T::DependencyArrayRemoved),
                (None, Some(_)) => add(out, &at, T::DependencyArrayAdded),
                (Some(x), Some(y)) if x != y => {
                    let kind = if y.is_superset(&x) {
                        T::DependencyArrayExtended
                    } else if x.is_superset(&y) {
                        T::DependencyArrayNarrowed
                    } else {
                        T::DependencyArrayChanged
                    };
                    add(out, &at, kind);
                }
                _ => {}
            }
        }

        let mut names: Vec<&String> = a.schema_dependencies.iter().map(|(n, _)| n).collect();
        names.extend(b.schema_dependencies.iter().map(|(n, _)| n));
        let mut seen = HashSet::new();
        for name in names {
            if !seen.insert(name) {
                continue;
            }
            let old = a
                .schema_dependencies
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, id)| *id);
            let new = b
                .schema_dependencies
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, id)| *id);
            let at = ["dependencies", name.as_str()];
            match (old, new) {
                (Some(_), None) => add(out, &at, T::DependencySchemaRemoved),
                (None, Some(_)) => add(out, &at, T::DependencySchemaAdded),
                (Some(x), Some(y)) => {
                    let sub = self.compare(x, y);
                    nest(out, &at, sub);
                }
                (None, None) => {}
            }
        }
    }

    /// `additionalProperties`/`additionalItems`: `[added, removed, narrowed, extended]`.
    fn open_part(
        &mut self,
        (permits_a, schema_a): (bool, Option<Id>),
        (permits_b, schema_b): (bool, Option<Id>),
        [added, removed, narrowed, extended]: [ChangeType; 4],
    ) -> Vec<Rel> {
        let mut out = Vec::new();
        if permits_a != permits_b {
            add(&mut out, &[], if permits_b { added } else { removed });
        } else {
            match (schema_a, schema_b) {
                (None, Some(_)) => add(&mut out, &[], narrowed),
                (Some(_), None) => add(&mut out, &[], extended),
                (Some(x), Some(y)) => out = self.compare(x, y),
                (None, None) => {}
            }
        }
        out
    }

    /// `unevaluatedProperties`/`unevaluatedItems`: `[added, removed, narrowed, extended]`.
    fn unevaluated(
        &mut self,
        a: Option<Id>,
        b: Option<Id>,
        [added, removed, narrowed, extended]: [ChangeType; 4],
    ) -> Vec<Rel> {
        let kind_of = |id: Option<Id>| id.map(|id| &self.arena.node(self.arena.deref(id)).kind);
        let is_false = |k: Option<&Kind>| matches!(k, Some(Kind::False));
        let is_empty = |k: Option<&Kind>| matches!(k, Some(Kind::Empty));
        let (ka, kb) = (kind_of(a), kind_of(b));
        let mut out = Vec::new();
        let kind = match (a, b) {
            (None, None) => return out,
            (None, Some(_)) => Some(if is_false(kb) {
                removed
            } else if is_empty(kb) {
                return out;
            } else {
                narrowed
            }),
            (Some(_), None) => Some(if is_false(ka) {
                added
            } else if is_empty(ka) {
                return out;
            } else {
                extended
            }),
            (Some(_), Some(_)) if is_false(ka) && !is_false(kb) => Some(added),
            (Some(_), Some(_)) if !is_false(ka) && is_false(kb) => Some(removed),
            (Some(_), Some(_)) if is_empty(ka) && !is_empty(kb) => Some(narrowed),
            (Some(_), Some(_)) if !is_empty(ka) && is_empty(kb) => Some(extended),
            (Some(x), Some(y)) => {
                out = self.compare(x, y);
                None
            }
        };
        if let Some(kind) = kind {
            add(&mut out, &[], kind);
        }
        out
    }

    fn array(&mut self, out: &mut Vec<Rel>, a: &ArraySchema, b: &ArraySchema) {
        let all = self.compare_opt(a.all_items, b.all_items);
        nest(out, &["items"], all);

        let common = a.item_list.len().min(b.item_list.len());
        for i in 0..a.item_list.len().max(b.item_list.len()) {
            let index = i.to_string();
            let at = ["items", index.as_str()];
            if i < common {
                let sub = self.compare(a.item_list[i], b.item_list[i]);
                nest(out, &at, sub);
            } else if let Some(&x) = a.item_list.get(i) {
                if array_is_open(self.arena, b) {
                    add(out, &at, T::ItemRemovedFromOpenContentModel);
                } else if let Some(cover) = array_cover(self.arena, b) {
                    let sub = self.compare(x, cover);
                    let kind = if compatible(&sub) {
                        T::ItemRemovedIsCoveredByPartiallyOpenContentModel
                    } else {
                        T::ItemRemovedNotCoveredByPartiallyOpenContentModel
                    };
                    nest(out, &at, sub);
                    add(out, &at, kind);
                } else if matches!(self.arena.node(self.arena.deref(x)).kind, Kind::False) {
                    add(out, &at, T::ItemWithFalseRemovedFromClosedContentModel);
                } else {
                    add(out, &at, T::ItemRemovedFromClosedContentModel);
                }
            } else if let Some(&y) = b.item_list.get(i) {
                if array_is_open(self.arena, a) {
                    let kind = if matches!(self.arena.node(self.arena.deref(y)).kind, Kind::Empty) {
                        T::ItemWithEmptySchemaAddedToOpenContentModel
                    } else {
                        T::ItemAddedToOpenContentModel
                    };
                    add(out, &at, kind);
                } else if let Some(cover) = array_cover(self.arena, a) {
                    let sub = self.compare(cover, y);
                    let kind = if compatible(&sub) {
                        T::ItemAddedIsCoveredByPartiallyOpenContentModel
                    } else {
                        T::ItemAddedNotCoveredByPartiallyOpenContentModel
                    };
                    nest(out, &at, sub);
                    add(out, &at, kind);
                } else {
                    add(out, &at, T::ItemAddedToClosedContentModel);
                }
            }
        }

        let additional = self.open_part(
            (a.permits_additional, a.additional),
            (b.permits_additional, b.additional),
            [
                T::AdditionalItemsAdded,
                T::AdditionalItemsRemoved,
                T::AdditionalItemsNarrowed,
                T::AdditionalItemsExtended,
            ],
        );
        nest(out, &["additionalItems"], additional);
        let unevaluated = self.unevaluated(
            a.unevaluated,
            b.unevaluated,
            [
                T::UnevaluatedItemsAdded,
                T::UnevaluatedItemsRemoved,
                T::UnevaluatedItemsNarrowed,
                T::UnevaluatedItemsExtended,
            ],
        );
        nest(out, &["unevaluatedItems"], unevaluated);

        bound(
            out,
            "maxItems",
            a.max_items,
            b.max_items,
            T::MaxItemsAdded,
            T::MaxItemsRemoved,
            T::MaxItemsIncreased,
            T::MaxItemsDecreased,
        );
        bound(
            out,
            "minItems",
            a.min_items,
            b.min_items,
            T::MinItemsAdded,
            T::MinItemsRemoved,
            T::MinItemsIncreased,
            T::MinItemsDecreased,
        );
        if a.unique_items != b.unique_items {
            add(
                out,
                &["uniqueItems"],
                if a.unique_items {
                    T::UniqueItemsRemoved
                } else {
                    T::UniqueItemsAdded
                },
            );
        }
        bound(
            out,
            "maxContains",
            a.max_contains,
            b.max_contains,
            T::MaxContainsAdded,
            T::MaxContainsRemoved,
            T::MaxContainsIncreased,
            T::MaxContainsDecreased,
        );
        bound(
            out,
            "minContains",
            a.min_contains,
            b.min_contains,
            T::MinContainsAdded,
            T::MinContainsRemoved,
            T::MinContainsIncreased,
            T::MinContainsDecreased,
        );
    }
}

/// Whether any property not declared is accepted as it is.
fn object_is_open(arena: &Arena, o: &ObjectSchema) -> bool {
    o.pattern_properties.is_empty()
        && o.permits_additional
        && o.additional.is_none()
        && o.unevaluated
            .is_none_or(|u| matches!(arena.node(arena.deref(u)).kind, Kind::Empty))
}

/// The schema an undeclared property `name` must match in a partially open
/// model: the first matching `patternProperties`, else `additionalProperties`,
/// else `unevaluatedProperties`.
fn object_cover(arena: &Arena, o: &ObjectSchema, name: &str) -> Option<Id> {
    if let Some(p) = o
        .pattern_properties
        .iter()
        .find(|p| p.regex.as_ref().is_some_and(|r| r.is_match(name)))
    {
        return Some(p.schema);
    }
    if o.additional.is_some() {
        return o.additional;
    }
    if o.permits_additional {
        return o
            .unevaluated
            .filter(|u| !matches!(arena.node(arena.deref(*u)).kind, Kind::False | Kind::Empty));
    }
    None
}

fn array_is_open(arena: &Arena, a: &ArraySchema) -> bool {
    a.permits_additional
        && a.additional.is_none()
        && a.unevaluated
            .is_none_or(|u| matches!(arena.node(arena.deref(u)).kind, Kind::Empty))
}

fn array_cover(arena: &Arena, a: &ArraySchema) -> Option<Id> {
    if a.additional.is_some() {
        return a.additional;
    }
    if a.permits_additional {
        return a
            .unevaluated
            .filter(|u| !matches!(arena.node(arena.deref(*u)).kind, Kind::False | Kind::Empty));
    }
    None
}

/// Kuhn's augmenting paths: for each old subschema (in order), the new one
/// it is matched with, so that as many as possible are matched.
fn maximum_matching(edges: &[Vec<(usize, Vec<Rel>)>], right: usize) -> Vec<Option<usize>> {
    fn augment(
        i: usize,
        edges: &[Vec<(usize, Vec<Rel>)>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for (j, _) in &edges[i] {
            if seen[*j] {
                continue;
            }
            seen[*j] = true;
            if owner[*j].is_none_or(|k| augment(k, edges, seen, owner)) {
                owner[*j] = Some(i);
                return true;
            }
        }
        false
    }
    let mut owner: Vec<Option<usize>> = vec![None; right];
    for i in 0..edges.len() {
        let mut seen = vec![false; right];
        augment(i, edges, &mut seen, &mut owner);
    }
    let mut matching = vec![None; edges.len()];
    for (j, i) in owner.iter().enumerate() {
        if let Some(i) = i {
            matching[*i] = Some(j);
        }
    }
    matching
}

fn string(out: &mut Vec<Rel>, a: &StringSchema, b: &StringSchema) {
    bound(
        out,
        "maxLength",
        a.max_length,
        b.max_length,
        T::MaxLengthAdded,
        T::MaxLengthRemoved,
        T::MaxLengthIncreased,
        T::MaxLengthDecreased,
    );
    bound(
        out,
        "minLength",
        a.min_length,
        b.min_length,
        T::MinLengthAdded,
        T::MinLengthRemoved,
        T::MinLengthIncreased,
        T::MinLengthDecreased,
    );
    match (&a.pattern, &b.pattern) {
        (None, Some(_)) => add(out, &["pattern"], T::PatternAdded),
        (Some(_), None) => add(out, &["pattern"], T::PatternRemoved),
        (Some(x), Some(y)) if x != y => add(out, &["pattern"], T::PatternChanged),
        _ => {}
    }
}

fn number(out: &mut Vec<Rel>, a: &NumberSchema, b: &NumberSchema) {
    bound(
        out,
        "maximum",
        a.maximum,
        b.maximum,
        T::MaximumAdded,
        T::MaximumRemoved,
        T::MaximumIncreased,
        T::MaximumDecreased,
    );
    bound(
        out,
        "minimum",
        a.minimum,
        b.minimum,
        T::MinimumAdded,
        T::MinimumRemoved,
        T::MinimumIncreased,
        T::MinimumDecreased,
    );
    bound(
        out,
        "exclusiveMaximum",
        a.exclusive_maximum,
        b.exclusive_maximum,
        T::ExclusiveMaximumAdded,
        T::ExclusiveMaximumRemoved,
        T::ExclusiveMaximumIncreased,
        T::ExclusiveMaximumDecreased,
    );
    bound(
        out,
        "exclusiveMinimum",
        a.exclusive_minimum,
        b.exclusive_minimum,
        T::ExclusiveMinimumAdded,
        T::ExclusiveMinimumRemoved,
        T::ExclusiveMinimumIncreased,
        T::ExclusiveMinimumDecreased,
    );
    match (a.multiple_of, b.multiple_of) {
        (None, Some(_)) => add(out, &["multipleOf"], T::MultipleOfAdded),
        (Some(_), None) => add(out, &["multipleOf"], T::MultipleOfRemoved),
        (Some(x), Some(y)) if x != y => {
            let kind = if divides(x, y) {
                T::MultipleOfExpanded
            } else if divides(y, x) {
                T::MultipleOfReduced
            } else {
                T::MultipleOfChanged
            };
            add(out, &["multipleOf"], kind);
        }
        _ => {}
    }
    if a.integer != b.integer {
        add(
            out,
            &[],
            if a.integer {
                T::TypeExtended
            } else {
                T::TypeNarrowed
            },
        );
    }
}

/// Whether `whole` is an integer multiple of `part` (both > 0), allowing for
/// the rounding of decimal fractions such as 0.1 in binary.
fn divides(part: f64, whole: f64) -> bool {
    let ratio = whole / part;
    ratio >= 1.0 && (ratio - ratio.round()).abs() <= 1e-9 * ratio
}

fn enumeration(out: &mut Vec<Rel>, a: &[Value], b: &[Value]) {
    let a_in_b = a.iter().all(|v| b.contains(v));
    let b_in_a = b.iter().all(|v| a.contains(v));
    let kind = match (a_in_b, b_in_a) {
        (true, true) => return,
        (true, false) => T::EnumArrayExtended,
        (false, true) => T::EnumArrayNarrowed,
        (false, false) => T::EnumArrayChanged,
    };
    add(out, &["enum"], kind);
}

/// A numeric keyword present on either side: the four change types say
/// which way it moved; whether that is safe is the type's business.
#[allow(clippy::too_many_arguments)]
fn bound<N: PartialOrd + Copy>(
    out: &mut Vec<Rel>,
    key: &str,
    a: Option<N>,
    b: Option<N>,
    added: ChangeType,
    removed: ChangeType,
    increased: ChangeType,
    decreased: ChangeType,
) {
    let kind = match (a, b) {
        (None, Some(_)) => added,
        (Some(_), None) => removed,
        (Some(x), Some(y)) if x < y => increased,
        (Some(x), Some(y)) if x > y => decreased,
        _ => return,
    };
    add(out, &[key], kind);
}
