//! The kinds of difference between two schemas, named as Confluent Schema
//! Registry names them, and the one change found at one place.

use std::fmt;
use std::str::FromStr;

macro_rules! change_types {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $compatible:literal; )*) => {
        /// One kind of difference between an older and a newer JSON Schema.
        ///
        /// The names are Confluent Schema Registry's (`Difference.Type` of its
        /// JSON Schema provider), written in SCREAMING_SNAKE case by
        /// [`Display`](fmt::Display) and read back by [`FromStr`]:
        ///
        /// ```
        /// use tidings_runtime::schemas::diff::ChangeType;
        /// let kind: ChangeType = "REQUIRED_ATTRIBUTE_ADDED".parse().unwrap();
        /// assert_eq!(kind, ChangeType::RequiredAttributeAdded);
        /// assert!(!kind.is_backward_compatible());
        /// assert_eq!(kind.to_string(), "REQUIRED_ATTRIBUTE_ADDED");
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ChangeType {
            $( $(#[$doc])* $variant, )*
        }

        impl ChangeType {
            /// Every change type, in Confluent's order.
            pub const ALL: &'static [ChangeType] = &[ $( ChangeType::$variant, )* ];

            /// The SCREAMING_SNAKE name, such as `"TYPE_CHANGED"`.
            pub fn as_str(self) -> &'static str {
                match self { $( ChangeType::$variant => $name, )* }
            }

            /// Whether readers of the newer schema still read every document
            /// valid under the older one when this is the only change
            /// (Confluent's `COMPATIBLE_CHANGES`).
            pub fn is_backward_compatible(self) -> bool {
                match self { $( ChangeType::$variant => $compatible, )* }
            }
        }
    };
}

change_types! {
    /// `$id` changed.
    IdChanged = "ID_CHANGED", true;
    /// `description` changed.
    DescriptionChanged = "DESCRIPTION_CHANGED", true;
    /// `title` changed.
    TitleChanged = "TITLE_CHANGED", true;
    /// `default` changed.
    DefaultChanged = "DEFAULT_CHANGED", true;
    /// A subschema exists where there was none (such as `items`).
    SchemaAdded = "SCHEMA_ADDED", false;
    /// A subschema was removed, so anything is accepted there.
    SchemaRemoved = "SCHEMA_REMOVED", true;
    /// The type accepts more: `integer` became `number`.
    TypeExtended = "TYPE_EXTENDED", true;
    /// The type accepts less: `number` became `integer`.
    TypeNarrowed = "TYPE_NARROWED", false;
    /// The type changed to an unrelated one.
    TypeChanged = "TYPE_CHANGED", false;

    /// `maxLength` appeared.
    MaxLengthAdded = "MAX_LENGTH_ADDED", false;
    /// `maxLength` was removed.
    MaxLengthRemoved = "MAX_LENGTH_REMOVED", true;
    /// `maxLength` grew.
    MaxLengthIncreased = "MAX_LENGTH_INCREASED", true;
    /// `maxLength` shrank.
    MaxLengthDecreased = "MAX_LENGTH_DECREASED", false;
    /// `minLength` appeared.
    MinLengthAdded = "MIN_LENGTH_ADDED", false;
    /// `minLength` was removed.
    MinLengthRemoved = "MIN_LENGTH_REMOVED", true;
    /// `minLength` grew.
    MinLengthIncreased = "MIN_LENGTH_INCREASED", false;
    /// `minLength` shrank.
    MinLengthDecreased = "MIN_LENGTH_DECREASED", true;
    /// `pattern` appeared.
    PatternAdded = "PATTERN_ADDED", false;
    /// `pattern` was removed.
    PatternRemoved = "PATTERN_REMOVED", true;
    /// `pattern` changed.
    PatternChanged = "PATTERN_CHANGED", false;

    /// `maximum` appeared.
    MaximumAdded = "MAXIMUM_ADDED", false;
    /// `maximum` was removed.
    MaximumRemoved = "MAXIMUM_REMOVED", true;
    /// `maximum` grew.
    MaximumIncreased = "MAXIMUM_INCREASED", true;
    /// `maximum` shrank.
    MaximumDecreased = "MAXIMUM_DECREASED", false;
    /// `minimum` appeared.
    MinimumAdded = "MINIMUM_ADDED", false;
    /// `minimum` was removed.
    MinimumRemoved = "MINIMUM_REMOVED", true;
    /// `minimum` grew.
    MinimumIncreased = "MINIMUM_INCREASED", false;
    /// `minimum` shrank.
    MinimumDecreased = "MINIMUM_DECREASED", true;
    /// `exclusiveMaximum` appeared.
    ExclusiveMaximumAdded = "EXCLUSIVE_MAXIMUM_ADDED", false;
    /// `exclusiveMaximum` was removed.
    ExclusiveMaximumRemoved = "EXCLUSIVE_MAXIMUM_REMOVED", true;
    /// `exclusiveMaximum` grew.
    ExclusiveMaximumIncreased = "EXCLUSIVE_MAXIMUM_INCREASED", true;
    /// `exclusiveMaximum` shrank.
    ExclusiveMaximumDecreased = "EXCLUSIVE_MAXIMUM_DECREASED", false;
    /// `exclusiveMinimum` appeared.
    ExclusiveMinimumAdded = "EXCLUSIVE_MINIMUM_ADDED", false;
    /// `exclusiveMinimum` was removed.
    ExclusiveMinimumRemoved = "EXCLUSIVE_MINIMUM_REMOVED", true;
    /// `exclusiveMinimum` grew.
    ExclusiveMinimumIncreased = "EXCLUSIVE_MINIMUM_INCREASED", false;
    /// `exclusiveMinimum` shrank.
    ExclusiveMinimumDecreased = "EXCLUSIVE_MINIMUM_DECREASED", true;
    /// `multipleOf` appeared.
    MultipleOfAdded = "MULTIPLE_OF_ADDED", false;
    /// `multipleOf` was removed.
    MultipleOfRemoved = "MULTIPLE_OF_REMOVED", true;
    /// The new `multipleOf` is a multiple of the old one (stricter).
    MultipleOfExpanded = "MULTIPLE_OF_EXPANDED", false;
    /// The new `multipleOf` divides the old one (looser).
    MultipleOfReduced = "MULTIPLE_OF_REDUCED", true;
    /// `multipleOf` changed to an unrelated value.
    MultipleOfChanged = "MULTIPLE_OF_CHANGED", false;

    /// An existing property became required.
    RequiredAttributeAdded = "REQUIRED_ATTRIBUTE_ADDED", false;
    /// An existing property with a `default` became required.
    RequiredAttributeWithDefaultAdded = "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED", true;
    /// A property is no longer required.
    RequiredAttributeRemoved = "REQUIRED_ATTRIBUTE_REMOVED", true;
    /// `maxProperties` appeared.
    MaxPropertiesAdded = "MAX_PROPERTIES_ADDED", false;
    /// `maxProperties` was removed.
    MaxPropertiesRemoved = "MAX_PROPERTIES_REMOVED", true;
    /// `maxProperties` grew.
    MaxPropertiesIncreased = "MAX_PROPERTIES_INCREASED", true;
    /// `maxProperties` shrank.
    MaxPropertiesDecreased = "MAX_PROPERTIES_DECREASED", false;
    /// `minProperties` appeared.
    MinPropertiesAdded = "MIN_PROPERTIES_ADDED", false;
    /// `minProperties` was removed.
    MinPropertiesRemoved = "MIN_PROPERTIES_REMOVED", true;
    /// `minProperties` grew.
    MinPropertiesIncreased = "MIN_PROPERTIES_INCREASED", false;
    /// `minProperties` shrank.
    MinPropertiesDecreased = "MIN_PROPERTIES_DECREASED", true;
    /// `additionalProperties: false` became permitted (true or a schema).
    AdditionalPropertiesAdded = "ADDITIONAL_PROPERTIES_ADDED", true;
    /// Additional properties are no longer permitted.
    AdditionalPropertiesRemoved = "ADDITIONAL_PROPERTIES_REMOVED", false;
    /// A schema for additional properties was dropped: any value is accepted.
    AdditionalPropertiesExtended = "ADDITIONAL_PROPERTIES_EXTENDED", true;
    /// Any additional property was accepted; now they must match a schema.
    AdditionalPropertiesNarrowed = "ADDITIONAL_PROPERTIES_NARROWED", false;
    /// A `dependencies`/`dependentRequired` entry appeared.
    DependencyArrayAdded = "DEPENDENCY_ARRAY_ADDED", false;
    /// A `dependencies`/`dependentRequired` entry was removed.
    DependencyArrayRemoved = "DEPENDENCY_ARRAY_REMOVED", true;
    /// A dependency list gained names.
    DependencyArrayExtended = "DEPENDENCY_ARRAY_EXTENDED", false;
    /// A dependency list lost names.
    DependencyArrayNarrowed = "DEPENDENCY_ARRAY_NARROWED", true;
    /// A dependency list changed otherwise.
    DependencyArrayChanged = "DEPENDENCY_ARRAY_CHANGED", false;
    /// A schema dependency (`dependentSchemas`) appeared.
    DependencySchemaAdded = "DEPENDENCY_SCHEMA_ADDED", false;
    /// A schema dependency was removed.
    DependencySchemaRemoved = "DEPENDENCY_SCHEMA_REMOVED", true;
    /// Confluent 7.x's name for a property added to an open content model;
    /// never reported, kept so that old names parse.
    PropertyAddedToOpenContentModel = "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", false;
    /// A required property was added where any property was accepted.
    RequiredPropertyAddedToOpenContentModel = "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", false;
    /// A required property with a default was added to an open content model.
    RequiredPropertyWithDefaultAddedToOpenContentModel = "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL", false;
    /// An optional property was added where any property was accepted: old
    /// data may hold that name with another type.
    OptionalPropertyAddedToOpenContentModel = "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", false;
    /// A property accepting anything was added to an open content model.
    PropertyWithEmptySchemaAddedToOpenContentModel = "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", true;
    /// A required property was added to a closed or partially open model.
    RequiredPropertyAddedToUnopenContentModel = "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", false;
    /// A required property with a default was added to a closed or partially open model.
    RequiredPropertyWithDefaultAddedToUnopenContentModel = "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL", true;
    /// An optional property was added to a closed or partially open model.
    OptionalPropertyAddedToUnopenContentModel = "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", true;
    /// A property was removed and the new model accepts any property.
    PropertyRemovedFromOpenContentModel = "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", true;
    /// A property declared `false` was removed from a closed model.
    PropertyWithFalseRemovedFromClosedContentModel = "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", true;
    /// A property was removed from a closed model: old data holding it is rejected.
    PropertyRemovedFromClosedContentModel = "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", false;
    /// A removed property is still accepted by `patternProperties`/`additionalProperties`.
    PropertyRemovedIsCoveredByPartiallyOpenContentModel = "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    /// A removed property is not accepted by what remains of the model.
    PropertyRemovedNotCoveredByPartiallyOpenContentModel = "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;
    /// An added property accepts what the old model accepted under that name.
    PropertyAddedIsCoveredByPartiallyOpenContentModel = "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    /// An added property rejects values the old model accepted under that name.
    PropertyAddedNotCoveredByPartiallyOpenContentModel = "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;
    /// A reserved property was removed from the metadata (registry metadata only).
    ReservedPropertyRemoved = "RESERVED_PROPERTY_REMOVED", false;
    /// A property uses a reserved name (registry metadata only).
    ReservedPropertyConflictsWithProperty = "RESERVED_PROPERTY_CONFLICTS_WITH_PROPERTY", false;
    /// `unevaluatedProperties: false` became permitted.
    UnevaluatedPropertiesAdded = "UNEVALUATED_PROPERTIES_ADDED", true;
    /// Unevaluated properties are no longer permitted.
    UnevaluatedPropertiesRemoved = "UNEVALUATED_PROPERTIES_REMOVED", false;
    /// The schema of unevaluated properties was dropped.
    UnevaluatedPropertiesExtended = "UNEVALUATED_PROPERTIES_EXTENDED", true;
    /// Unevaluated properties must now match a schema.
    UnevaluatedPropertiesNarrowed = "UNEVALUATED_PROPERTIES_NARROWED", false;

    /// `maxItems` appeared.
    MaxItemsAdded = "MAX_ITEMS_ADDED", false;
    /// `maxItems` was removed.
    MaxItemsRemoved = "MAX_ITEMS_REMOVED", true;
    /// `maxItems` grew.
    MaxItemsIncreased = "MAX_ITEMS_INCREASED", true;
    /// `maxItems` shrank.
    MaxItemsDecreased = "MAX_ITEMS_DECREASED", false;
    /// `minItems` appeared.
    MinItemsAdded = "MIN_ITEMS_ADDED", false;
    /// `minItems` was removed.
    MinItemsRemoved = "MIN_ITEMS_REMOVED", true;
    /// `minItems` grew.
    MinItemsIncreased = "MIN_ITEMS_INCREASED", false;
    /// `minItems` shrank.
    MinItemsDecreased = "MIN_ITEMS_DECREASED", true;
    /// `maxContains` appeared.
    MaxContainsAdded = "MAX_CONTAINS_ADDED", false;
    /// `maxContains` was removed.
    MaxContainsRemoved = "MAX_CONTAINS_REMOVED", true;
    /// `maxContains` grew.
    MaxContainsIncreased = "MAX_CONTAINS_INCREASED", true;
    /// `maxContains` shrank.
    MaxContainsDecreased = "MAX_CONTAINS_DECREASED", false;
    /// `minContains` appeared.
    MinContainsAdded = "MIN_CONTAINS_ADDED", false;
    /// `minContains` was removed.
    MinContainsRemoved = "MIN_CONTAINS_REMOVED", true;
    /// `minContains` grew.
    MinContainsIncreased = "MIN_CONTAINS_INCREASED", false;
    /// `minContains` shrank.
    MinContainsDecreased = "MIN_CONTAINS_DECREASED", true;
    /// `uniqueItems: true` appeared.
    UniqueItemsAdded = "UNIQUE_ITEMS_ADDED", false;
    /// `uniqueItems: true` was removed.
    UniqueItemsRemoved = "UNIQUE_ITEMS_REMOVED", true;
    /// Items past the tuple became permitted.
    AdditionalItemsAdded = "ADDITIONAL_ITEMS_ADDED", true;
    /// Items past the tuple are no longer permitted.
    AdditionalItemsRemoved = "ADDITIONAL_ITEMS_REMOVED", false;
    /// The schema of items past the tuple was dropped.
    AdditionalItemsExtended = "ADDITIONAL_ITEMS_EXTENDED", true;
    /// Items past the tuple must now match a schema.
    AdditionalItemsNarrowed = "ADDITIONAL_ITEMS_NARROWED", false;
    /// `unevaluatedItems: false` became permitted.
    UnevaluatedItemsAdded = "UNEVALUATED_ITEMS_ADDED", true;
    /// Unevaluated items are no longer permitted.
    UnevaluatedItemsRemoved = "UNEVALUATED_ITEMS_REMOVED", false;
    /// The schema of unevaluated items was dropped.
    UnevaluatedItemsExtended = "UNEVALUATED_ITEMS_EXTENDED", true;
    /// Unevaluated items must now match a schema.
    UnevaluatedItemsNarrowed = "UNEVALUATED_ITEMS_NARROWED", false;
    /// A tuple position was added where any item was accepted.
    ItemAddedToOpenContentModel = "ITEM_ADDED_TO_OPEN_CONTENT_MODEL", false;
    /// A tuple position accepting anything was added to an open model.
    ItemWithEmptySchemaAddedToOpenContentModel = "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", true;
    /// A tuple position was added where no item was accepted.
    ItemAddedToClosedContentModel = "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", true;
    /// A tuple position was removed and the new model accepts any item there.
    ItemRemovedFromOpenContentModel = "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", true;
    /// A tuple position declared `false` was removed from a closed model.
    ItemWithFalseRemovedFromClosedContentModel = "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", true;
    /// A tuple position was removed from a closed model.
    ItemRemovedFromClosedContentModel = "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", false;
    /// A removed tuple position is still accepted by the additional-items schema.
    ItemRemovedIsCoveredByPartiallyOpenContentModel = "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    /// A removed tuple position is not accepted by the additional-items schema.
    ItemRemovedNotCoveredByPartiallyOpenContentModel = "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;
    /// An added tuple position accepts what the additional-items schema accepted.
    ItemAddedIsCoveredByPartiallyOpenContentModel = "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    /// An added tuple position rejects items the additional-items schema accepted.
    ItemAddedNotCoveredByPartiallyOpenContentModel = "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;

    /// `enum` gained values.
    EnumArrayExtended = "ENUM_ARRAY_EXTENDED", true;
    /// `enum` lost values.
    EnumArrayNarrowed = "ENUM_ARRAY_NARROWED", false;
    /// `enum` (or `const`) changed otherwise.
    EnumArrayChanged = "ENUM_ARRAY_CHANGED", false;

    /// `allOf`/`oneOf` became a looser combinator (such as `anyOf`).
    CombinedTypeExtended = "COMBINED_TYPE_EXTENDED", true;
    /// The combinator changed in a way that rejects old data.
    CombinedTypeChanged = "COMBINED_TYPE_CHANGED", false;
    /// `allOf` gained subschemas.
    ProductTypeExtended = "PRODUCT_TYPE_EXTENDED", false;
    /// `allOf` lost subschemas (or a constraint was dropped).
    ProductTypeNarrowed = "PRODUCT_TYPE_NARROWED", true;
    /// `anyOf`/`oneOf` gained alternatives.
    SumTypeExtended = "SUM_TYPE_EXTENDED", true;
    /// `anyOf`/`oneOf` lost alternatives.
    SumTypeNarrowed = "SUM_TYPE_NARROWED", false;
    /// Some old subschema has no compatible counterpart in the new combinator.
    CombinedTypeSubschemasChanged = "COMBINED_TYPE_SUBSCHEMAS_CHANGED", false;
    /// The `not` schema accepts more, so the schema accepts less.
    NotTypeExtended = "NOT_TYPE_EXTENDED", false;
    /// The `not` schema accepts less, so the schema accepts more.
    NotTypeNarrowed = "NOT_TYPE_NARROWED", true;
}

impl ChangeType {
    /// How to undo this change when it breaks a mode, in the words of a Rust
    /// payload struct; `None` for the kinds that need no advice or have none
    /// that holds in general.
    ///
    /// ```
    /// use tidings_runtime::schemas::diff::ChangeType;
    /// let fix = ChangeType::RequiredPropertyAddedToUnopenContentModel.fix().unwrap();
    /// assert!(fix.contains("`Option<…>`") && fix.contains("`#[serde(default)]`"));
    /// ```
    pub fn fix(self) -> Option<&'static str> {
        Some(match self {
            ChangeType::RequiredPropertyAddedToUnopenContentModel
            | ChangeType::RequiredPropertyAddedToOpenContentModel
            | ChangeType::RequiredPropertyWithDefaultAddedToOpenContentModel
            | ChangeType::RequiredAttributeAdded => {
                "payloads written before lack this field: make it `Option<…>` or give it \
                 `#[serde(default)]` so that they still decode, or publish the change as a new version"
            }
            ChangeType::PropertyRemovedFromClosedContentModel
            | ChangeType::PropertyRemovedNotCoveredByPartiallyOpenContentModel => {
                "payloads written before may hold this field: keep it in the struct (an `Option<…>` \
                 that is never set is enough)"
            }
            ChangeType::MaximumDecreased
            | ChangeType::MinimumIncreased
            | ChangeType::ExclusiveMaximumDecreased
            | ChangeType::ExclusiveMinimumIncreased => {
                "the readers' range of values is narrower than the writers' (an integer type changed \
                 width or sign, such as `u64` and `u32` or `u32` and `i32`, or a `range` changed): \
                 values one side writes fall outside what the other reads; keep the type as it was"
            }
            _ => return None,
        })
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change type name that is not one of [`ChangeType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown change type `{0}`")]
pub struct UnknownChangeType(pub String);

impl FromStr for ChangeType {
    type Err = UnknownChangeType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        ChangeType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownChangeType(s.to_owned()))
    }
}

/// One difference between two schemas: what changed and where.
///
/// `pointer` is a JSON Pointer in URI-fragment form into the schema,
/// `#/` for the root, such as `#/properties/size`. Displayed as
/// `<CHANGE_TYPE> <pointer>`, the form `tidings schema diff` prints.
///
/// ```
/// use tidings_runtime::schemas::diff::{Change, ChangeType};
/// let change = Change::new(ChangeType::TypeChanged, "#/properties/size");
/// assert_eq!(change.to_string(), "TYPE_CHANGED #/properties/size");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Change {
    /// What changed.
    pub kind: ChangeType,
    /// Where, as `#/a/b`.
    pub pointer: String,
}

impl Change {
    /// A change of `kind` at `pointer`.
    pub fn new(kind: ChangeType, pointer: impl Into<String>) -> Self {
        Change {
            kind,
            pointer: pointer.into(),
        }
    }

    /// Whether this change alone keeps the newer schema backward compatible.
    pub fn is_backward_compatible(&self) -> bool {
        self.kind.is_backward_compatible()
    }

    /// How to undo the change when it breaks a mode: [`ChangeType::fix`].
    pub fn fix(&self) -> Option<&'static str> {
        self.kind.fix()
    }

    /// The property the change is about: the last name after `properties`
    /// in the pointer (`carrier` for `#/properties/carrier`), if any.
    ///
    /// ```
    /// use tidings_runtime::schemas::diff::{Change, ChangeType};
    /// let c = Change::new(ChangeType::MaximumDecreased, "#/properties/size/maximum");
    /// assert_eq!(c.property().as_deref(), Some("size"));
    /// ```
    pub fn property(&self) -> Option<String> {
        let segments: Vec<&str> = self.pointer.trim_start_matches("#/").split('/').collect();
        let at = segments.iter().rposition(|s| *s == "properties")?;
        let name = segments.get(at + 1)?;
        Some(name.replace("~1", "/").replace("~0", "~"))
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.pointer)
    }
}
