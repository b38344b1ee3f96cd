//! Events of an order service, declared in modules as a real crate declares
//! them; nothing here names the schema check.

pub mod gates;

/// Orders and what happens to them.
pub mod orders {
    use tidings::event;

    /// An order was placed (first version).
    #[event(stream = "orders", version = 1)]
    pub struct OrderPlacedV1 {
        /// The order.
        pub order_id: String,
    }

    /// An order was placed, with its total once known.
    #[event(stream = "orders", version = 2, upcast_from = OrderPlacedV1)]
    pub struct OrderPlaced {
        /// The order.
        pub order_id: String,
        /// Total in cents.
        pub total_cents: Option<u64>,
    }

    impl From<OrderPlacedV1> for OrderPlaced {
        fn from(v1: OrderPlacedV1) -> Self {
            OrderPlaced {
                order_id: v1.order_id,
                total_cents: None,
            }
        }
    }

    /// Shipping.
    pub mod shipping {
        /// A parcel left the warehouse.
        #[tidings::event(stream = "orders", version = 1)]
        pub struct ParcelShipped {
            /// The parcel.
            pub parcel_id: String,
            /// Its weight.
            pub weight_grams: u32,
        }
    }
}
