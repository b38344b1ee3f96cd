//! GraphQL subscriptions fed by Pub/Sub: an async-graphql `Subscription`
//! whose fields are `bus.subscribe` (one event type, typed) and
//! `bus.subscribe_pattern` (every type of a channel matching a glob, as
//! CloudEvents JSON), for one tenant per request. The example runs a
//! subscription the way a GraphQL server runs it for a client, prints each
//! response, and exits.
//!
//! In-memory by default; on Redis with `REDIS_URL=redis://127.0.0.1:6379`.
//!
//! ```text
//! cargo run --example graphql
//! ```
//!
//! Served over WebSocket, the same schema is one route of an axum app with
//! `async-graphql-axum` (`GraphQLSubscription::new(schema)`); the tenant
//! comes from the connection's authentication into the request's data, never
//! from an argument the client chooses.

use async_graphql::{Context, EmptyMutation, Object, Schema, SimpleObject, Subscription};
use futures::{Stream, StreamExt};
use tidings::{event, Bus};

/// A gate opened: an event of the `notifications` channel, and a GraphQL
/// object as it is.
#[event(channel = "notifications", version = 1)]
#[derive(Debug, SimpleObject)]
pub struct GateOpened {
    /// Which gate.
    pub gate: String,
}

/// A door opened, on the same channel.
#[event(channel = "notifications", version = 1)]
#[derive(Debug)]
pub struct DoorOpened {
    /// Which door.
    pub door: String,
}

/// The tenant a request is for, put in its data by the server after
/// authentication.
struct Tenant(String);

/// Told each time a subscription is in place. Pub/Sub keeps nothing for a
/// subscriber that comes late, and async-graphql starts a subscription when
/// its stream is first polled: the example publishes once both are in place.
#[derive(Clone)]
struct Subscribed(tokio::sync::mpsc::UnboundedSender<&'static str>);

/// Says that the subscription `field` is in place, if anyone asks.
fn subscribed(ctx: &Context<'_>, field: &'static str) {
    if let Some(Subscribed(tx)) = ctx.data_opt::<Subscribed>() {
        let _ = tx.send(field);
    }
}

struct Query;

#[Object]
impl Query {
    /// GraphQL needs a query root; the subscriptions are what matter here.
    async fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
}

struct Subscription;

/// The bus of the request's tenant.
fn tenant_bus(ctx: &Context<'_>) -> async_graphql::Result<Bus> {
    let bus = ctx.data::<Bus>()?;
    let Tenant(tenant) = ctx.data::<Tenant>()?;
    Ok(bus.tenant(tenant)?)
}

#[Subscription]
impl Subscription {
    /// Every `gate.opened` of the tenant, typed, decoded from whatever
    /// version was sent. Pub/Sub is at most once: what is published before
    /// the subscription starts is not seen.
    async fn gate_opened(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = GateOpened>> {
        let events = tenant_bus(ctx)?.subscribe::<GateOpened>().await?;
        subscribed(ctx, "gateOpened");
        // A message that does not decode is logged by the subscription and
        // left out of the GraphQL stream.
        Ok(events.filter_map(|e| async move { e.ok() }))
    }

    /// Every event of `channel` whose type matches `pattern` (`gate.*`), as
    /// CloudEvents JSON. The bus checks both names: a `:`, a brace or a
    /// pattern that would reach another tenant's channels is an error.
    async fn events(
        &self,
        ctx: &Context<'_>,
        channel: String,
        pattern: String,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Json<serde_json::Value>>> {
        let events = tenant_bus(ctx)?
            .subscribe_pattern(&channel, &pattern)
            .await?;
        subscribed(ctx, "events");
        Ok(events.filter_map(|e| async move {
            let event = e.ok()?;
            let json = serde_json::from_slice(&event.envelope().to_json()).ok()?;
            Some(async_graphql::Json(json))
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::builder().source("graphql").from_env().await?;
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let schema = Schema::build(Query, EmptyMutation, Subscription)
        .data(bus.clone())
        .data(Subscribed(ready_tx))
        .finish();

    // What the server does for a client of tenant `acme`.
    let request = |query: &str| async_graphql::Request::new(query).data(Tenant("acme".into()));
    let mut gates = schema.execute_stream(request("subscription { gateOpened { gate } }"));
    let mut all = schema.execute_stream(request(
        r#"subscription { events(channel: "notifications", pattern: "*") }"#,
    ));
    let mut hostile = schema.execute_stream(request(
        r#"subscription { events(channel: "{globex}:notifications", pattern: "*") }"#,
    ));
    let refused = hostile.next().await.ok_or("no answer")?;
    println!("another tenant's channel: {}", refused.errors[0].message);

    // A subscription is in place once its stream is first polled; the
    // example polls both while it publishes, as a server does.
    let acme = bus.tenant("acme")?;
    let globex = bus.tenant("globex")?;
    let publish = async {
        for _ in 0..2 {
            ready.recv().await;
        }
        globex
            .publish(&GateOpened {
                gate: "globex-1".into(),
            })
            .await?;
        acme.publish(&GateOpened {
            gate: "north".into(),
        })
        .await?;
        acme.publish(&DoorOpened {
            door: "lobby".into(),
        })
        .await?;
        Ok::<_, tidings::Error>(())
    };
    // Both streams are polled at once, as a server polls each client's.
    let read_gates = async {
        let gate = gates.next().await.ok_or("gates ended")?;
        println!("gateOpened: {}", gate.data);
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    let read_all = async {
        for _ in 0..2 {
            let event = all.next().await.ok_or("events ended")?;
            println!("events: {}", event.data);
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    let (published, gates, all) = tokio::join!(publish, read_gates, read_all);
    published?;
    gates?;
    all?;
    Ok(())
}
