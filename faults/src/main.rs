//! `faults [--events [--rabbitmq]] [--runs N] [--seed S] [--postgres CONFIG]`: randomized
//! fault schedules against the example services — the write path, or with `--events` the
//! event path (outbox, relay, a NATS server of its own — or a RabbitMQ node with
//! `--rabbitmq` — and a consumer); ends with `faults: N runs, L lost, D
//! duplicated` and fails unless both are 0. `faults serve` and `faults consume` are the
//! processes it starts.

use faults::harness::{self, Options};
use std::process::ExitCode;

const USAGE: &str =
    "usage: faults [--events [--rabbitmq]] [--runs N] [--seed S] [--postgres CONFIG]
       faults serve --postgres CONFIG --port PORT [--broker URL]
       faults consume --postgres CONFIG --broker URL --merchant URL

  --events            the event path instead of the write path
  --rabbitmq          the event path on RabbitMQ instead of NATS JetStream
  --broker URL        nats://… or amqp://…
  --runs N            randomized runs (default 20)
  --seed S            the schedule's seed (default: from the clock; printed)
  --postgres CONFIG   libpq connection string (default PACTUM_TEST_POSTGRES or
                      \"host=127.0.0.1 port=5432 user=postgres dbname=test\")";

fn default_postgres() -> String {
    std::env::var("PACTUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let postgres = value("--postgres").unwrap_or_else(default_postgres);
    if args.first().map(String::as_str) == Some("serve") {
        let port: u16 = match value("--port").map(|p| p.parse()) {
            Some(Ok(p)) => p,
            _ => {
                eprintln!("faults serve: --port needs a port number\n{USAGE}");
                return ExitCode::from(2);
            }
        };
        let broker = value("--broker");
        return match faults::services::serve(&postgres, port, broker.as_deref()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("faults serve: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.first().map(String::as_str) == Some("consume") {
        let (Some(broker), Some(merchant)) = (value("--broker"), value("--merchant")) else {
            eprintln!("faults consume: --broker and --merchant need URLs\n{USAGE}");
            return ExitCode::from(2);
        };
        return match faults::services::consume(&postgres, &broker, &merchant).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("faults consume: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runs = match value("--runs").map(|r| r.parse::<u32>()) {
        None => 20,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("faults: --runs needs a whole number\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let seed = match value("--seed").map(|s| s.parse::<u64>()) {
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            eprintln!("faults: --seed needs a whole number\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let services = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("faults: cannot find its own binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        services,
        postgres,
        forget_keys_on_restart: false,
        broker: None,
    };
    println!("faults: {runs} runs, seed {seed}");
    if args.iter().any(|a| a == "--rabbitmq") && !args.iter().any(|a| a == "--events") {
        eprintln!("faults: --rabbitmq is for the event path: add --events\n{USAGE}");
        return ExitCode::from(2);
    }
    let transport = if args.iter().any(|a| a == "--rabbitmq") {
        faults::events::Transport::RabbitMq
    } else {
        faults::events::Transport::Nats
    };
    let report = if args.iter().any(|a| a == "--events") {
        faults::events::run_on(transport, &options, runs, seed, None).await
    } else {
        harness::run(&options, runs, seed, None).await
    };
    match report {
        Ok(report) => {
            for p in &report.problems {
                println!("  {p}");
            }
            println!("{report}");
            if report.lost == 0
                && report.duplicated == 0
                && report.inconsistent == 0
                && report.unfired == 0
            {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("faults: {e}");
            ExitCode::FAILURE
        }
    }
}
