//! A load generator for the bank: complete flows and resource calls.
//!
//! ```text
//! loadgen --discovery URL [--discovery URL]... --server-ca FILE --client-id ID --certificate FILE
//!         --key-dir DIR [--flows K] [--concurrency C] [--calls N] [--bank-pid PID]...
//!         [--customer USER --password PASS] [--account ID]
//! ```
//!
//! Several `--discovery` URLs (several bank instances on one database)
//! spread the flows: worker `w` runs its flows against instance `w mod n`,
//! each flow whole on one instance; `--bank-pid` of each instance sums
//! their CPU. The resource-call comparison runs against the first.
//!
//! 1. `K` complete flows at concurrency `C`: client-credentials token and
//!    account-access consent, PAR with a signed request object, the
//!    customer's login and consent on the bank's pages (scripted), the JARM
//!    response verified and the code exchanged. Reports flows/s and p50/p95
//!    per step; with `--bank-pid`, the bank's CPU time per flow (from
//!    `/proc/<pid>/stat`).
//! 2. `N` resource calls at concurrency `C` against an authenticated route
//!    (`GET .../accounts/{id}/balances`: verify -> bind -> consent gate ->
//!    core) and `N` against an unauthenticated control route on the same
//!    listener (`GET /jwks`: same TLS, middleware and connection pool), and
//!    the throughput ratio, with the bank's CPU per call (`--bank-pid`) and
//!    the load generator's own (both share the machine in a local run).
//!
//! Start the bank with `--rate-limit 0 --customer-rate-limit 0` for a load
//! run (the per-client and per-address limits would otherwise be what is
//! measured).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fapi_core::crypto::default_provider;
use fapi_core::SystemClock;
use fapi_examples::cli::{Flags, Res};
use fapi_examples::pki::FileKeySource;
use fapi_examples::tpp::{ScriptedCustomer, Tpp, TppConfig};
use serde_json::json;

const STEPS: [&str; 4] = ["consent", "par", "authorize", "token"];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // nearest rank
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// utime + stime of a process, in clock ticks (Linux `/proc`).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the command name, which is in parentheses
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// One complete flow; returns each step's time and the access token.
async fn one_flow(
    tpp: &Tpp,
    customer: &ScriptedCustomer<'_>,
    account: &str,
    aisp: &str,
) -> Res<([Duration; 4], String)> {
    let t0 = Instant::now();
    let cc = tpp.client_credentials("accounts").await?;
    let created = tpp
        .post_json(
            &format!("{aisp}/account-access-consents"),
            &cc,
            &json!({ "Data": { "Permissions": ["ReadAccountsDetail", "ReadBalances"] }, "Risk": {} }),
            None,
        )
        .await?;
    if created.status != 201 {
        return Err(format!("consent creation answered {}", created.status).into());
    }
    let consent = created
        .json()
        .pointer("/Data/ConsentId")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let t1 = Instant::now();
    let pending = tpp.push_authorization(&consent, "openid accounts").await?;
    let t2 = Instant::now();
    let location = customer
        .authorize(&pending.authorization_url, &[account], true)
        .await?;
    let t3 = Instant::now();
    let token = tpp.complete(&pending, &location).await?.access_token;
    let t4 = Instant::now();
    Ok(([t1 - t0, t2 - t1, t3 - t2, t4 - t3], token))
}

/// `n` GETs of `url` at concurrency `c`; returns calls per second.
async fn hammer(tpp: &Arc<Tpp>, url: &str, token: &str, n: usize, c: usize) -> Res<f64> {
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..c {
        let (tpp, url, token) = (tpp.clone(), url.to_owned(), token.to_owned());
        let share = n / c + usize::from(w < n % c);
        workers.push(tokio::spawn(async move {
            for _ in 0..share {
                let r = tpp.get(&url, &token).await?;
                if r.status != 200 {
                    return Err::<(), Box<dyn std::error::Error + Send + Sync>>(
                        format!("{url} answered {}", r.status).into(),
                    );
                }
            }
            Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / started.elapsed().as_secs_f64();
    Ok(rate)
}

async fn run(flags: &Flags) -> Res<()> {
    let need = |n: &str| flags.get(n).ok_or_else(|| format!("--{n} is required"));
    let id = need("client-id")?.to_owned();
    let flows: usize = flags.parsed("flows")?.unwrap_or(200);
    let concurrency: usize = flags.parsed("concurrency")?.unwrap_or(8).max(1);
    let calls: usize = flags.parsed("calls")?.unwrap_or(5_000);
    let bank_pids: Vec<u32> = flags
        .all("bank-pid")
        .into_iter()
        .map(|p| {
            p.parse()
                .map_err(|_| format!("--bank-pid: {p:?} is not valid"))
        })
        .collect::<Result<_, _>>()?;
    // the instances' CPU ticks summed (None without --bank-pid, or if one
    // cannot be read)
    let banks_cpu = || -> Option<u64> {
        if bank_pids.is_empty() {
            return None;
        }
        bank_pids.iter().map(|p| cpu_ticks(*p)).sum()
    };
    let account = flags.get("account").unwrap_or("acc-1").to_owned();
    let provider = default_provider();
    let discoveries = flags.all("discovery");
    if discoveries.is_empty() {
        return Err("--discovery is required".into());
    }
    let keys = FileKeySource::new(&PathBuf::from(need("key-dir")?), provider.clone());
    // one client per instance: each flow stays on the instance it began on
    let mut instances = Vec::new();
    for discovery in &discoveries {
        let config = TppConfig::development(
            &id,
            (*discovery).to_owned(),
            PathBuf::from(need("server-ca")?),
            PathBuf::from(need("certificate")?),
            fapi_core::Profile::Fapi2MessageSigning,
        );
        let tpp =
            Arc::new(Tpp::connect(config, &keys, provider.clone(), Arc::new(SystemClock)).await?);
        let aisp = tpp
            .discovery()
            .aisp
            .clone()
            .ok_or("the bank does not advertise openbanking.aisp")?;
        instances.push((tpp, aisp));
    }
    let (tpp, aisp) = instances
        .first()
        .cloned()
        .ok_or("--discovery is required")?;
    let username = flags.get("customer").unwrap_or("alice").to_owned();
    let password = flags.get("password").unwrap_or("alice-password").to_owned();

    // 1. complete flows
    println!(
        "{flows} complete flows at concurrency {concurrency} across {} bank instance(s)",
        instances.len()
    );
    let cpu_before = banks_cpu();
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let share = flows / concurrency + usize::from(w < flows % concurrency);
        let (tpp, aisp) = instances
            .get(w % instances.len())
            .cloned()
            .ok_or("no bank instance")?;
        let (tpp, aisp, account, username, password) = (
            tpp,
            aisp,
            account.clone(),
            username.clone(),
            password.clone(),
        );
        workers.push(tokio::spawn(async move {
            let customer = ScriptedCustomer {
                browser: tpp.public_client(),
                username: &username,
                password: &password,
            };
            let mut times = Vec::new();
            for _ in 0..share {
                times.push(one_flow(&tpp, &customer, &account, &aisp).await?.0);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(times)
        }));
    }
    let mut per_instance = vec![0usize; instances.len()];
    for w in 0..concurrency {
        if let Some(n) = per_instance.get_mut(w % instances.len()) {
            *n += flows / concurrency + usize::from(w < flows % concurrency);
        }
    }
    let mut per_step: [Vec<Duration>; 4] = Default::default();
    for w in workers {
        for t in w.await?? {
            for (i, d) in t.iter().enumerate() {
                if let Some(v) = per_step.get_mut(i) {
                    v.push(*d);
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu_after = banks_cpu();
    #[allow(clippy::cast_precision_loss)]
    let rate = flows as f64 / elapsed.as_secs_f64();
    println!("  {rate:.1} flows/s ({:.2} s)", elapsed.as_secs_f64());
    if instances.len() > 1 {
        for (d, n) in discoveries.iter().zip(&per_instance) {
            println!("  {n} flows completed on {d}");
        }
    }
    for (name, v) in STEPS.iter().zip(per_step.iter_mut()) {
        v.sort();
        println!(
            "  {name:<10} p50 {:>7.2} ms   p95 {:>7.2} ms",
            ms(percentile(v, 0.50)),
            ms(percentile(v, 0.95))
        );
    }
    if let (Some(b), Some(a)) = (cpu_before, cpu_after) {
        #[allow(clippy::cast_precision_loss)]
        let per_flow = (a.saturating_sub(b)) as f64 / TICKS_PER_SEC / flows as f64;
        println!("  bank CPU per complete flow: {:.2} ms", per_flow * 1000.0);
    }

    // 2. authenticated vs control route
    let customer = ScriptedCustomer {
        browser: tpp.public_client(),
        username: &username,
        password: &password,
    };
    let token = one_flow(&tpp, &customer, &account, &aisp).await?.1;
    let api_base = aisp
        .split("/open-banking")
        .next()
        .unwrap_or_default()
        .to_owned();
    let authenticated = format!("{aisp}/accounts/{account}/balances");
    let control = format!("{api_base}/jwks");
    // warm the pool, then measure each route
    hammer(&tpp, &control, &token, concurrency * 4, concurrency).await?;
    // (bank, this load generator): both share the machine when run as in
    // BENCHMARKS.md, so the client's own cost per call is reported too
    let me = std::process::id();
    let ticks = || (banks_cpu(), cpu_ticks(me));
    let cpu_0 = ticks();
    let control_rate = hammer(&tpp, &control, &token, calls, concurrency).await?;
    let cpu_1 = ticks();
    let auth_rate = hammer(&tpp, &authenticated, &token, calls, concurrency).await?;
    let cpu_2 = ticks();
    // CPU per call, in microseconds
    #[allow(clippy::cast_precision_loss)]
    let micros = |a: Option<u64>, b: Option<u64>| {
        a.zip(b)
            .map(|(a, b)| b.saturating_sub(a) as f64 / TICKS_PER_SEC / calls as f64 * 1e6)
    };
    let per_call = |a: (Option<u64>, Option<u64>), b: (Option<u64>, Option<u64>)| {
        let bank = micros(a.0, b.0).map(|us| format!(", bank CPU {us:.0} us/call"));
        let client = micros(a.1, b.1).map(|us| format!(", loadgen CPU {us:.0} us/call"));
        format!("{}{}", bank.unwrap_or_default(), client.unwrap_or_default())
    };
    println!("{calls} resource calls at concurrency {concurrency}");
    println!(
        "  control route (GET /jwks, mTLS, no token):          {control_rate:>8.0} calls/s{}",
        per_call(cpu_0, cpu_1)
    );
    println!(
        "  authenticated (balances: verify -> bind -> gate -> core): {auth_rate:>8.0} calls/s{}",
        per_call(cpu_1, cpu_2)
    );
    println!(
        "  authenticated / control throughput: {:.2}",
        auth_rate / control_rate
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match Flags::parse_repeating(&args, &["discovery", "bank-pid"]).and_then(|f| {
        f.only(&[
            "discovery",
            "server-ca",
            "client-id",
            "certificate",
            "key-dir",
            "flows",
            "concurrency",
            "calls",
            "bank-pid",
            "customer",
            "password",
            "account",
        ])?;
        Ok(f)
    }) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
