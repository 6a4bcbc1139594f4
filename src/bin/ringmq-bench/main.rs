//! ringmq-bench: an MQTT load generator for loopback brokers (ringmq,
//! mosquitto, ...).
//!
//! Scenarios: `p2p` (N publishers → N subscribers, a topic each), `fanout`
//! (P publishers → S subscribers on one topic), `fanin` (P publishers, a
//! topic each → S subscribers of all, or of one `$share` group with
//! `--shared`), `storm` (many idle connections, few threads), `hostile`
//! (bounded attack phases while a probe client measures; [`hostile`]), and the
//! many-connection IoT shapes driven by a few `mio` threads ([`fleet`]): `iot-fanin`,
//! `iot-pairs`, `churn`, `idle-fleet`, with several offered rates in one run. Over TCP or
//! MQTT over WebSocket, MQTT 3.1.1 or 5.0, QoS 0/1/2, with a bounded in-flight
//! window per publisher at QoS 1/2. Every payload carries its send time,
//! publisher id and sequence number ([`payload`]), so subscribers count loss,
//! duplicates and reordering and record every latency in an HDR histogram.
//! Every run is bounded by `--duration` plus a drain of at most 5 s and
//! connect timeouts, and a watchdog; the result is one JSON object on stdout.

mod args;
mod churn;
mod churn_client;
mod fleet;
mod fleet_args;
mod fleet_conn;
mod fleet_ctl;
mod fleet_plan;
mod fleet_roles;
mod fleet_run;
mod fleet_sched;
mod hostile;
mod idle_fleet;
mod iot;
mod mqtt;
mod payload;
mod probe;
mod pubsub;
mod report;
mod sampler;
mod scenario;
mod stats;
mod storm;
mod tls;
mod wire;

use std::time::Duration;

use args::Scenario;

fn main() {
    let cfg = args::parse().unwrap_or_else(|e| {
        eprintln!("ringmq-bench: {e}");
        std::process::exit(2)
    });
    let a = &cfg.args;
    // Whatever happens (a stuck socket, a broker that stops answering), the
    // process ends by itself.
    let budget = match a.scenario {
        s if fleet_args::is_fleet(s) => fleet_args::budget_secs(&cfg),
        Scenario::Storm => {
            let open = (cfg.connections as u64)
                .checked_div(cfg.connect_rate)
                .unwrap_or(0);
            open + a.hold + 4 * a.connect_timeout + 30
        }
        Scenario::Hostile => hostile::budget_secs(),
        _ => {
            let setup = (cfg.publishers + cfg.subscribers) as u64 * a.connect_timeout / 8;
            a.duration + a.drain + setup + 4 * a.connect_timeout + 30
        }
    };
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(budget));
        eprintln!("ringmq-bench: watchdog: run exceeded {budget} s, exiting");
        std::process::exit(3);
    });
    let file = a.json.clone();
    let result = match a.scenario {
        Scenario::Storm => storm::run(cfg),
        Scenario::Hostile => hostile::run(cfg),
        s if fleet_args::is_fleet(s) => {
            // Refuses (exit 2) before opening anything when the connections do not fit.
            storm::ensure_nofile(fleet_args::fd_need(&cfg));
            match s {
                Scenario::Churn => churn::run(cfg),
                Scenario::IdleFleet => idle_fleet::run(cfg),
                _ => iot::run(cfg),
            }
        }
        _ => {
            storm::ensure_nofile(2 * (cfg.publishers + cfg.subscribers) + 64);
            scenario::run(cfg)
        }
    };
    report::emit(&result, file.as_deref());
}
