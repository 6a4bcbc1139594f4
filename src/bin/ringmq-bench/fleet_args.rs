//! Arguments of the many-connection scenarios (iot-fanin, iot-pairs, churn, idle-fleet):
//! defaults, validation, the open files they need and the watchdog's budget.

use std::net::SocketAddr;

use ringmq::protocol::{ProtocolVersion, QoS};

use crate::args::{Args, Config, Scenario, Transport};

/// Rate steps at most in one run (each one a line of the report).
const MAX_STEPS: usize = 20;
/// Files this process needs besides its connections (stdio, epoll, /proc reads, threads).
const FD_MARGIN: usize = 64;

pub fn is_fleet(s: Scenario) -> bool {
    matches!(
        s,
        Scenario::IotFanin | Scenario::IotPairs | Scenario::Churn | Scenario::IdleFleet
    )
}

/// The scenario's name as given on the command line.
pub fn name(s: Scenario) -> &'static str {
    match s {
        Scenario::IotFanin => "iot-fanin",
        Scenario::IotPairs => "iot-pairs",
        Scenario::Churn => "churn",
        _ => "idle-fleet",
    }
}

pub fn validate(
    args: Args,
    target: SocketAddr,
    version: ProtocolVersion,
    qos: QoS,
) -> Result<Config, String> {
    let sc = name(args.scenario);
    if args.transport != Transport::Tcp {
        return Err(format!("{sc}: plain TCP only (--transport tcp)"));
    }
    if qos == QoS::ExactlyOnce {
        return Err(format!("{sc}: --qos 0 or 1"));
    }
    if args.threads == 0 || args.threads > 64 {
        return Err("--threads must be 1..=64".into());
    }
    if args.step_secs == 0 || args.step_secs > 300 {
        return Err("--step-secs must be 1..=300".into());
    }
    let (publishers, subscribers, connections) = match args.scenario {
        Scenario::IotFanin => {
            let p = args.publishers.unwrap_or(1000);
            (p, args.subscribers.unwrap_or(1), 0)
        }
        Scenario::IotPairs => {
            let n = args.pairs.unwrap_or(5000);
            if args.publishers.is_some_and(|p| p != n) || args.subscribers.is_some_and(|s| s != n) {
                return Err("iot-pairs: give --pairs N only".into());
            }
            (n, n, 0)
        }
        Scenario::Churn => (0, 1, 0),
        _ => (0, 0, args.connections.unwrap_or(15_000)),
    };
    let default_rate = match args.scenario {
        Scenario::IotFanin => 10_000,
        Scenario::IotPairs => 5_000,
        _ => 1_000,
    };
    let mut args = args;
    if args.rates.is_empty() {
        args.rates = vec![default_rate];
    }
    if args.rates.len() > MAX_STEPS || args.rates.contains(&0) {
        return Err(format!("--rates: 1 to {MAX_STEPS} steps, each at least 1"));
    }
    match args.scenario {
        Scenario::IotFanin | Scenario::IotPairs if publishers == 0 || subscribers == 0 => {
            return Err("need at least one publisher and one subscriber".into());
        }
        Scenario::Churn if args.concurrency == 0 => {
            return Err("churn: --concurrency must be at least 1".into());
        }
        Scenario::IdleFleet if connections == 0 || args.keepalive == 0 => {
            return Err("idle-fleet: --connections and --keepalive must be at least 1".into());
        }
        Scenario::IdleFleet if args.window == 0 || args.window > 3600 => {
            return Err("idle-fleet: --window must be 1..=3600 seconds".into());
        }
        _ => {}
    }
    let connect_rate = match args.connect_rate.unwrap_or(5000) {
        0 => 1_000_000_000,
        r => r,
    };
    Ok(Config {
        target: SocketAddr::new(target.ip(), args.port),
        args,
        version,
        qos,
        publishers,
        subscribers,
        connections,
        connect_rate,
        tls: None,
    })
}

/// Connections the run opens before measuring (churn: its one subscriber).
pub fn standing(cfg: &Config) -> usize {
    match cfg.args.scenario {
        Scenario::IdleFleet => cfg.connections,
        _ => cfg.publishers + cfg.subscribers,
    }
}

/// Open files the scenario needs at once.
pub fn fd_need(cfg: &Config) -> usize {
    let churn = if cfg.args.scenario == Scenario::Churn {
        cfg.args.concurrency
    } else {
        0
    };
    standing(cfg) + churn + FD_MARGIN
}

/// Seconds opening the standing connections may take before the rest are given up.
pub fn open_budget_secs(cfg: &Config) -> u64 {
    standing(cfg) as u64 / cfg.connect_rate.max(1) + 2 * cfg.args.connect_timeout + 10
}

/// Seconds the whole run may take before the watchdog ends it.
pub fn budget_secs(cfg: &Config) -> u64 {
    let a = &cfg.args;
    let steps = a.rates.len() as u64 * a.step_secs;
    let run = match a.scenario {
        Scenario::IdleFleet => a.keepalive as u64 + 2 + a.window + 5,
        Scenario::Churn => steps + a.connect_timeout + 5,
        _ => steps + 5,
    };
    open_budget_secs(cfg) + run + 30
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::args::{validate, Args};

    fn check(line: &str) -> Result<crate::args::Config, String> {
        let argv = std::iter::once("ringmq-bench").chain(line.split_whitespace());
        validate(Args::try_parse_from(argv).map_err(|e| e.to_string())?)
    }

    #[test]
    fn fleet_defaults() {
        let c = check("--scenario iot-fanin").expect("valid");
        assert_eq!((c.publishers, c.subscribers), (1000, 1));
        assert_eq!(c.args.rates, vec![10_000]);
        assert_eq!(c.connect_rate, 5000);
        let c = check("--scenario iot-pairs --pairs 7").expect("valid");
        assert_eq!((c.publishers, c.subscribers), (7, 7));
        let c = check("--scenario idle-fleet").expect("valid");
        assert_eq!(c.connections, 15_000);
        assert_eq!(super::fd_need(&c), 15_064);
        let c = check("--scenario churn --rates 500,1000 --concurrency 10").expect("valid");
        assert_eq!(c.args.rates, vec![500, 1000]);
        assert_eq!(super::fd_need(&c), 1 + 10 + 64);
    }

    #[test]
    fn fleet_refusals() {
        assert!(check("--scenario iot-fanin --qos 2").is_err());
        assert!(check("--scenario iot-fanin --transport ws").is_err());
        assert!(check("--scenario iot-fanin --rates 10,0").is_err());
        assert!(check("--scenario iot-fanin --step-secs 0").is_err());
        assert!(check("--scenario iot-pairs --pairs 5 --publishers 6").is_err());
        assert!(check("--scenario idle-fleet --keepalive 0").is_err());
        assert!(check("--scenario idle-fleet --window 0").is_err());
        assert!(check("--scenario churn --concurrency 0").is_err());
        assert!(check("--scenario iot-pairs --shared").is_err());
        assert!(check("--scenario iot-fanin --host 10.0.0.1").is_err());
    }

    #[test]
    fn many_connections_only_for_fleet() {
        assert!(check("--scenario iot-fanin --publishers 10000").is_ok());
        assert!(check("--scenario fanin --publishers 10000").is_err());
        assert!(check("--scenario iot-fanin --publishers 10000 --shared --subscribers 4").is_ok());
    }

    #[test]
    fn budget_covers_opening_steps_and_drain() {
        let c = check("--scenario iot-fanin --publishers 10000 --rates 1,2,3 --step-secs 5")
            .expect("valid");
        // 2 s to open, 2 × 5 s connect timeouts + 10, 15 s of steps + 5, 30 margin.
        assert_eq!(super::budget_secs(&c), 2 + 20 + 20 + 30);
    }
}
