//! Arrays: items, prefix items, contains, lengths and uniqueness.

use super::scalar::bound;
use super::{add, compatible, nest, Rel, Walker};
use crate::schemas::diff::change::ChangeType as T;
use crate::schemas::diff::model::Kind;
use crate::schemas::diff::model::{Arena, ArraySchema, Id};

impl Walker<'_> {
    pub(super) fn array(&mut self, out: &mut Vec<Rel>, a: &ArraySchema, b: &ArraySchema) {
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
            a.max_items.as_ref(),
            b.max_items.as_ref(),
            T::MaxItemsAdded,
            T::MaxItemsRemoved,
            T::MaxItemsIncreased,
            T::MaxItemsDecreased,
        );
        bound(
            out,
            "minItems",
            a.min_items.as_ref(),
            b.min_items.as_ref(),
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
            a.max_contains.as_ref(),
            b.max_contains.as_ref(),
            T::MaxContainsAdded,
            T::MaxContainsRemoved,
            T::MaxContainsIncreased,
            T::MaxContainsDecreased,
        );
        bound(
            out,
            "minContains",
            a.min_contains.as_ref(),
            b.min_contains.as_ref(),
            T::MinContainsAdded,
            T::MinContainsRemoved,
            T::MinContainsIncreased,
            T::MinContainsDecreased,
        );
    }
}

pub(super) fn array_is_open(arena: &Arena, a: &ArraySchema) -> bool {
    a.permits_additional
        && a.additional.is_none()
        && a.unevaluated
            .is_none_or(|u| matches!(arena.node(arena.deref(u)).kind, Kind::Empty))
}

pub(super) fn array_cover(arena: &Arena, a: &ArraySchema) -> Option<Id> {
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
