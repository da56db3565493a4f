//! An async service on tokio: many concurrent deliveries, each a task, with
//! the async API only — no thread is blocked on an fsync or a waiting
//! duplicate, so two runtime workers handle hundreds of deliveries at once.
//!
//! Each delivery of an `order.placed` event ships the order (the side effect)
//! through [`Store::run_once_with_async`], whose answer is a typed
//! `Json<Receipt>`: stored as JSON by the first delivery, decoded back to a
//! `Receipt` for every duplicate.
//!
//! - Duplicates that arrive while the order is being shipped wait for the
//!   receipt (`ClaimOptions::new().wait(..)`) instead of answering "in
//!   flight": every one of them gets the same `Receipt`, without a thread
//!   each.
//! - A delivery cut short mid-handler — here its request deadline
//!   (`tokio::time::timeout`) drops the future while the warehouse is slow
//!   to confirm — abandons its claim. The redelivery acquires it at once
//!   with `attempt.recovered() == true`, finds the shipment the cancelled
//!   attempt made, and does not ship a second time.
//!
//! `main` asserts that each order shipped exactly once and that all the
//! deliveries of an order got the same receipt.
//!
//! Run it with `cargo run --example tokio_async`. The store lives in a
//! temporary directory, removed at the end.

use std::collections::HashMap;
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idemkv::{ClaimOptions, Fail, Fingerprint, Json, Key, RunOnce, Store};
use serde::{Deserialize, Serialize};

/// The event's payload.
#[derive(Debug, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    item: String,
}

/// The answer for an order: stored once, replayed to every duplicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Receipt {
    order_id: String,
    shipment_id: u64,
}

/// One delivery of an event.
#[derive(Debug, Clone)]
struct Delivery {
    event_id: String,
    body: Vec<u8>,
}

/// What `handle` answers: a receipt (`Ran` or `Replayed`), or why not.
type Answer = RunOnce<Json<Receipt>, String>;

/// Handles one delivery: ships the order once per event.
async fn handle(
    store: &Store,
    warehouse: &Warehouse,
    delivery: &Delivery,
) -> idemkv::Result<Answer> {
    let key = Key::new("orders", &delivery.event_id)?;
    // A duplicate that finds the event in flight waits (asynchronously) for
    // the holder's receipt, up to 10 s, instead of answering InFlight.
    let options = ClaimOptions::new().wait(Duration::from_secs(10));
    let fingerprint = Fingerprint::of(&delivery.body);
    store
        .run_once_with_async(&key, fingerprint, &options, |attempt| async move {
            // A payload that is not an order will never be one: a terminal
            // failure, stored and answered to every redelivery.
            let order: OrderPlaced = serde_json::from_slice(&delivery.body)
                .map_err(|e| Fail::Terminal(format!("invalid payload: {e}")))?;
            if attempt.recovered() {
                // An earlier attempt was cut short after claiming: it may
                // have shipped. Reconcile before shipping again.
                if let Some(receipt) = warehouse.find(&order.order_id) {
                    return Ok(Json(receipt));
                }
            }
            // `?` on an error makes a retryable failure: the key is freed
            // and the sender's next delivery tries again.
            let receipt = warehouse.ship(&order).await?;
            Ok(Json(receipt))
        })
        .await
}

/// The downstream system: ships orders. Shipping an order twice sends two
/// parcels.
#[derive(Default)]
struct Warehouse {
    shipments: Mutex<Vec<Receipt>>,
    reconciled: AtomicUsize,
}

impl Warehouse {
    /// Ships the order: the request reaches the warehouse at once, its
    /// confirmation comes back later (slowly for a piano).
    async fn ship(&self, order: &OrderPlaced) -> Result<Receipt, String> {
        let receipt = {
            let mut shipments = self.shipments.lock().map_err(|_| "warehouse unavailable")?;
            let receipt = Receipt {
                order_id: order.order_id.clone(),
                shipment_id: shipments.len() as u64 + 1,
            };
            shipments.push(receipt.clone());
            receipt
        };
        let confirmation =
            if order.item == "piano" { Duration::from_secs(10) } else { Duration::from_millis(20) };
        tokio::time::sleep(confirmation).await;
        Ok(receipt)
    }

    /// Reconciliation: the shipment an earlier attempt made for this order.
    fn find(&self, order_id: &str) -> Option<Receipt> {
        let shipments = self.shipments.lock().ok()?;
        let found = shipments.iter().find(|r| r.order_id == order_id).cloned();
        if found.is_some() {
            self.reconciled.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    fn shipments_per_order(&self) -> HashMap<String, usize> {
        let mut per_order = HashMap::new();
        for r in self.shipments.lock().expect("warehouse lock").iter() {
            *per_order.entry(r.order_id.clone()).or_default() += 1;
        }
        per_order
    }
}

fn order_placed(n: usize, item: &str) -> Result<Delivery, serde_json::Error> {
    let order = OrderPlaced { order_id: format!("ord_{n}"), item: item.to_owned() };
    Ok(Delivery { event_id: format!("evt_{n}"), body: serde_json::to_vec(&order)? })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?; // Durable: every transition fsynced
    let warehouse = Arc::new(Warehouse::default());

    // 1. 200 orders, each delivered one to three times, every delivery a
    //    task, all at once: the duplicates of an order arrive while it is
    //    being shipped.
    let mut tasks = Vec::new();
    for n in 1..=200 {
        let delivery = order_placed(n, "book")?;
        for _ in 0..1 + n % 3 {
            let (store, warehouse, delivery) = (store.clone(), warehouse.clone(), delivery.clone());
            tasks.push(tokio::spawn(async move {
                let answer = handle(&store, &warehouse, &delivery).await;
                (delivery.event_id, answer)
            }));
        }
    }
    let mut receipts: HashMap<String, Vec<Answer>> = HashMap::new();
    for task in tasks {
        let (event_id, answer) = task.await?;
        receipts.entry(event_id).or_default().push(answer?);
    }

    // 2. A delivery cut short: its 1 s request deadline drops the handler's
    //    future while the warehouse confirms the piano (10 s). The piano has
    //    shipped, the claim is abandoned; the sender got no answer.
    let piano = order_placed(201, "piano")?;
    let cut_short =
        tokio::time::timeout(Duration::from_secs(1), handle(&store, &warehouse, &piano)).await;
    assert!(cut_short.is_err(), "the deadline cancelled the handler");
    // The redelivery acquires at once, recovered: it finds the shipment.
    for _ in 0..2 {
        let answer = handle(&store, &warehouse, &piano).await?;
        receipts.entry(piano.event_id.clone()).or_default().push(answer);
    }

    // The checks: one shipment per order, one receipt per event for all its
    // deliveries — the first ran, every other one replayed it.
    let shipments = warehouse.shipments_per_order();
    assert_eq!(shipments.len(), 201, "every order shipped");
    assert!(shipments.values().all(|&n| n == 1), "an order shipped twice: {shipments:?}");
    let (mut ran, mut replayed) = (0, 0);
    for (event_id, answers) in &receipts {
        let values: Vec<&Receipt> =
            answers.iter().filter_map(RunOnce::value).map(|Json(r)| r).collect();
        assert_eq!(values.len(), answers.len(), "{event_id}: not all got a receipt: {answers:?}");
        assert!(
            values.iter().all(|r| *r == values[0]),
            "{event_id}: different receipts {values:?}"
        );
        ran += answers.iter().filter(|a| matches!(a, RunOnce::Ran(_))).count();
        replayed += answers.iter().filter(|a| matches!(a, RunOnce::Replayed(_))).count();
    }
    assert_eq!(ran, receipts.len(), "exactly one delivery per event ran");
    assert_eq!(warehouse.reconciled.load(Ordering::Relaxed), 1, "the piano was reconciled");

    let deliveries = receipts.values().map(Vec::len).sum::<usize>() + 1; // + the cancelled one
    println!(
        "{deliveries} deliveries of {} orders on 2 workers in {} ms:",
        receipts.len(),
        started.elapsed().as_millis()
    );
    println!("  {ran} ran (one of them reconciled a cancelled attempt), {replayed} replayed,");
    println!("  1 cancelled by its request deadline (no answer)");
    println!(
        "warehouse: {} shipments, one per order; every duplicate got the same receipt",
        shipments.values().sum::<usize>()
    );
    // At shutdown, every task done: `close` blocks briefly (a checkpoint).
    store.close()?;
    Ok(())
}
