//! Runs the fake TrackVia API from the test support crate, for trying the operator by hand.
//!
//! ```text
//! cargo run --example fake-trackvia -- --port 8443 --ca-out /tmp/fake/ca.pem \
//!     --credential KEY:TOKEN:valid --credential KEY:OLD:expired --credential KEY:SBX:valid:42
//! ```
//!
//! Behaviour names: valid, empty, expired, revoked, deactivated, unknown, inactive-user,
//! forbidden, rate-limited[=SECS], server-error, slow=SECS, close, status=CODE, redirect=URL,
//! huge=BYTES. A fourth field is the `account-id` the behaviour applies to.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use trackvia_testsupport::fake::{Behavior, FakeOptions, FakeTrackVia};

/// A fake TrackVia API over HTTPS with its own certificate authority.
#[derive(Parser, Debug)]
#[command(name = "fake-trackvia")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,

    /// Where to write the CA certificate (PEM); default: a temporary file.
    #[arg(long)]
    ca_out: Option<PathBuf>,

    /// KEY:TOKEN:BEHAVIOR[:ACCOUNT_ID]; repeatable.
    #[arg(long = "credential", value_parser = parse_credential)]
    credentials: Vec<Credential>,

    /// Extra API keys that are known but have no token configured.
    #[arg(long = "api-key")]
    api_keys: Vec<String>,

    /// Behaviour for tokens that are not configured (default: 401 invalid token).
    #[arg(long)]
    default: Option<Behavior>,

    /// Extra names for the server certificate besides localhost and 127.0.0.1.
    #[arg(long = "san")]
    extra_sans: Vec<String>,
}

#[derive(Clone, Debug)]
struct Credential {
    api_key: String,
    token: String,
    behavior: Behavior,
    account_id: Option<u64>,
}

fn parse_credential(s: &str) -> Result<Credential, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (api_key, token, behavior, account) = match parts.as_slice() {
        [k, t, b] => (*k, *t, *b, None),
        [k, t, b, a] => (*k, *t, *b, Some(*a)),
        _ => return Err("expected KEY:TOKEN:BEHAVIOR[:ACCOUNT_ID]".to_string()),
    };
    if api_key.is_empty() || token.is_empty() {
        return Err("the API key and the token must not be empty".to_string());
    }
    let behavior = behavior.parse::<Behavior>().map_err(|e| e.to_string())?;
    let account_id = account
        .map(|a| {
            a.parse::<u64>()
                .map_err(|_| format!("account id {a:?} is not a number"))
        })
        .transpose()?;
    Ok(Credential {
        api_key: api_key.to_string(),
        token: token.to_string(),
        behavior,
        account_id,
    })
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let fake = FakeTrackVia::start_with(FakeOptions {
        port: args.port,
        ca_path: args.ca_out,
        extra_sans: args.extra_sans,
        default_behavior: args.default,
        ..FakeOptions::default()
    })
    .await;
    for key in &args.api_keys {
        fake.add_api_key(key);
    }
    for c in &args.credentials {
        match c.account_id {
            Some(account) => {
                fake.set_for_account(&c.api_key, &c.token, account, c.behavior.clone())
            }
            None => fake.set(&c.api_key, &c.token, c.behavior.clone()),
        }
    }
    println!("host: {}", fake.host());
    println!("url: {}", fake.base_url());
    println!("ca: {}", fake.ca_file().display());
    println!(
        "serving {} credential(s); Ctrl-C to stop",
        args.credentials.len()
    );

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut printed = 0;
    loop {
        let stop = tokio::select! {
            result = &mut ctrl_c => {
                if let Err(e) = result {
                    eprintln!("cannot wait for Ctrl-C: {e}");
                }
                true
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => false,
        };
        printed = print_requests(&fake, printed);
        if stop {
            break;
        }
    }
    fake.shutdown().await;
}

/// Prints the requests after the first `already` ones; returns how many have been printed.
/// Tokens and keys stay out of the output.
fn print_requests(fake: &FakeTrackVia, already: usize) -> usize {
    let requests = fake.requests();
    for r in requests.iter().skip(already) {
        let status = r.status.map_or("closed".to_string(), |s| s.to_string());
        let account = r.account_id.map_or("-".to_string(), |a| a.to_string());
        println!("{} {} -> {status} (account {account})", r.method, r.path);
    }
    requests.len()
}
