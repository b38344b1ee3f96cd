//! Without `REDIS_URL`, every `Bus::from_env()` of a process meets on one
//! in-memory broker, as services in one process would on one Redis.

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::events::GateOpened;
use tidings::Bus;

#[tokio::test]
async fn two_buses_from_the_environment_share_one_broker() {
    // This binary holds this one test, so nothing reads the variable meanwhile.
    std::env::remove_var("REDIS_URL");
    let billing = Bus::builder().source("billing").from_env().await.unwrap();
    let shipping = Bus::builder().source("shipping").from_env().await.unwrap();
    assert!(billing
        .memory()
        .unwrap()
        .same_broker(shipping.memory().unwrap()));

    let mut gates = shipping.subscribe::<GateOpened>().await.unwrap();
    billing
        .publish(&GateOpened {
            gate: "north".into(),
        })
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), gates.next())
        .await
        .expect("the other bus's event arrives")
        .unwrap()
        .unwrap();
    assert_eq!(got.gate, "north");

    // `in_memory()` stays a broker of its own, for tests that want one.
    assert!(!Bus::in_memory()
        .memory()
        .unwrap()
        .same_broker(billing.memory().unwrap()));
}
