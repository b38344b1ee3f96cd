//! Pub/Sub notifications: a pattern subscription (`gate.*`) and two tenants
//! that do not see each other's messages. At most once: only subscribers
//! present when a message is published receive it.
//!
//! In-memory by default; on Redis with `REDIS_URL=redis://127.0.0.1:6379`.
//!
//! ```text
//! cargo run --example notifications
//! ```

use std::time::Duration;

use futures::StreamExt;
use tidings::{event, Bus};

/// A gate opened.
#[event(channel = "notifications", version = 1)]
#[derive(Debug)]
pub struct GateOpened {
    /// Which gate.
    pub gate: String,
}

/// A gate closed.
#[event(channel = "notifications", version = 1)]
#[derive(Debug)]
pub struct GateClosed {
    /// Which gate.
    pub gate: String,
}

/// A door opened: on the same channel, not matched by `gate.*`.
#[event(channel = "notifications", version = 1)]
#[derive(Debug)]
pub struct DoorOpened {
    /// Which door.
    pub door: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let bus = Bus::builder().source("notifications").from_env().await?;
    let psychotest = bus.tenant("psychotest")?;
    let acme = bus.tenant("acme")?;

    // Subscribe first: Pub/Sub keeps nothing for later subscribers.
    let mut gates = psychotest
        .subscribe_pattern("notifications", "gate.*")
        .await?;
    let mut acme_opened = acme.subscribe::<GateOpened>().await?;
    println!(
        "psychotest listens on {}",
        psychotest.channel_pattern("notifications", "gate.*")?
    );
    println!(
        "acme listens on {}",
        acme.channel_key("notifications", "gate.opened")?
    );

    psychotest
        .publish(&GateOpened {
            gate: "north".into(),
        })
        .await?;
    psychotest
        .publish(&DoorOpened {
            door: "back".into(),
        })
        .await?; // not a gate: not matched
    psychotest
        .publish(&GateClosed {
            gate: "north".into(),
        })
        .await?;
    acme.publish(&GateOpened {
        gate: "east".into(),
    })
    .await?;

    for _ in 0..2 {
        let msg = tokio::time::timeout(Duration::from_secs(5), gates.next())
            .await?
            .ok_or("subscription ended")??;
        if msg.is::<GateOpened>() {
            println!(
                "[psychotest] gate opened: {}",
                msg.decode::<GateOpened>()?.gate
            );
        } else if msg.is::<GateClosed>() {
            println!(
                "[psychotest] gate closed: {}",
                msg.decode::<GateClosed>()?.gate
            );
        } else {
            println!("[psychotest] {} on {}", msg.type_name(), msg.channel());
        }
    }
    let opened = tokio::time::timeout(Duration::from_secs(5), acme_opened.next())
        .await?
        .ok_or("subscription ended")??;
    println!("[acme] gate opened: {}", opened.gate);

    // Nothing of acme's reached psychotest, and the door was not a gate.
    let extra = tokio::time::timeout(Duration::from_millis(200), gates.next()).await;
    println!(
        "psychotest received nothing else: {}",
        if extra.is_err() { "yes" } else { "no" }
    );
    Ok(())
}
