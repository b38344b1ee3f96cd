//! Objects: properties, required fields, additional and pattern
//! properties, dependencies and `unevaluatedProperties`.

use std::collections::HashSet;

use super::scalar::bound;
use super::{add, compatible, nest, Rel, Walker};
use crate::schemas::diff::change::ChangeType;
use crate::schemas::diff::change::ChangeType as T;
use crate::schemas::diff::model::Kind;
use crate::schemas::diff::model::{Arena, Id, ObjectSchema};

impl Walker<'_> {
    pub(super) fn object(&mut self, out: &mut Vec<Rel>, a: &ObjectSchema, b: &ObjectSchema) {
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
            a.max_properties.as_ref(),
            b.max_properties.as_ref(),
            T::MaxPropertiesAdded,
            T::MaxPropertiesRemoved,
            T::MaxPropertiesIncreased,
            T::MaxPropertiesDecreased,
        );
        bound(
            out,
            "minProperties",
            a.min_properties.as_ref(),
            b.min_properties.as_ref(),
            T::MinPropertiesAdded,
            T::MinPropertiesRemoved,
            T::MinPropertiesIncreased,
            T::MinPropertiesDecreased,
        );
    }

    pub(super) fn dependencies(&mut self, out: &mut Vec<Rel>, a: &ObjectSchema, b: &ObjectSchema) {
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
    pub(super) fn open_part(
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
    pub(super) fn unevaluated(
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
}

/// Whether any property not declared is accepted as it is.
pub(super) fn object_is_open(arena: &Arena, o: &ObjectSchema) -> bool {
    o.pattern_properties.is_empty()
        && o.permits_additional
        && o.additional.is_none()
        && o.unevaluated
            .is_none_or(|u| matches!(arena.node(arena.deref(u)).kind, Kind::Empty))
}

/// The schema an undeclared property `name` must match in a partially open
/// model: the first matching `patternProperties`, else `additionalProperties`,
/// else `unevaluatedProperties`.
pub(super) fn object_cover(arena: &Arena, o: &ObjectSchema, name: &str) -> Option<Id> {
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
