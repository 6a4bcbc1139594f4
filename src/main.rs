use std::process::ExitCode;

use clap::Parser;
use ringmq::config::{Cli, Config};

/// mimalloc, not glibc's malloc: it keeps each size class on pages of its
/// own and gives emptied pages back, so the memory that a burst of
/// connections used while being served returns to the system once they
/// park, instead of staying resident between long-lived small objects.
/// It is also faster on the many short-lived allocations of a shard.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sets the allocator's options before the first Rust allocation, which
/// reserves mimalloc's first arena with whatever options hold then: an
/// ELF constructor runs ahead of the runtime's start-up code.
#[used]
#[link_section = ".init_array"]
static CONFIGURE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn configure() {
        ringmq::server::memory::configure_allocator();
    }
    configure
};

fn main() -> ExitCode {
    // `ringmq passwd ...` manages a password file and never starts a broker.
    if std::env::args_os().nth(1).is_some_and(|a| a == "passwd") {
        return ringmq::auth::passwd_cmd::run(std::env::args_os().skip(2));
    }
    let config = match Config::from_cli(Cli::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringmq: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match ringmq::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringmq: {e}");
            ExitCode::FAILURE
        }
    }
}
