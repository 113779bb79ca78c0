//! `unavoce bench delivery`: a broadcast to many people through the gate, rendering
//! and the outbox to a local SMTP sink and a local webhook sink, against sending the
//! same messages directly through the same providers, measured in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use unavoce_core::audience::Audience;
use unavoce_core::policy::{Policies, PolicyConfig};
use unavoce_delivery::config::{Credential, DeliveryConfig, Pace, SmtpConfig, WebhookConfig};
use unavoce_engagement::Broadcast;
use unavoce_platform::{Blueprint, Running};
use unavoce_store::{Outbox, OutboxQuery, OutboxStatus, SqliteLog, SqliteOptions};

use super::{current_rss_kib, peak_rss_kib};

#[derive(Args)]
pub(super) struct DeliveryBenchArgs {
    /// People in the broadcast's audience (half reached by e-mail, half by push).
    #[arg(long, default_value_t = 100_000)]
    profiles: usize,
    /// Messages in flight per provider, for the outbox and the direct sends alike.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

/// Acknowledges received data at once (TCP_QUICKACK; Linux clears it as it goes, so it
/// is set again after each read). lettre writes a message's end (`.`) separately from
/// its body, so against a receiver that delays its ACKs each message waits for that
/// timer (up to 40 ms); a fast MTA, like this sink, acknowledges at once.
fn quick_ack(stream: &impl std::os::fd::AsRawFd) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option of the right size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A local SMTP sink: takes every message and keeps nothing but the count.
async fn smtp_sink(received: Arc<AtomicU64>) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = received.clone();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    quick_ack(lines.get_ref().get_ref().as_ref());
                    let answer: &[u8] = if in_data {
                        if line != "." {
                            continue;
                        }
                        in_data = false;
                        received.fetch_add(1, Ordering::Relaxed);
                        b"250 queued\r\n"
                    } else {
                        match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                            Some("EHLO") => b"250-sink\r\n250 8BITMIME\r\n",
                            Some("DATA") => {
                                in_data = true;
                                b"354 go ahead\r\n"
                            }
                            Some("QUIT") => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        }
                    };
                    if write.write_all(answer).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(port)
}

/// A local webhook sink: answers 200 to every post and counts them.
async fn webhook_sink(received: Arc<AtomicU64>) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().fallback(move || {
        let received = received.clone();
        async move {
            received.fetch_add(1, Ordering::Relaxed);
            "{}"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

pub(super) async fn delivery_bench(args: DeliveryBenchArgs) -> anyhow::Result<()> {
    let n = args.profiles;
    println!("Delivery benchmark: a broadcast to {n} people, half by e-mail, half by push");
    let (mails, posts) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let smtp_port = smtp_sink(mails.clone()).await?;
    let webhook_port = webhook_sink(posts.clone()).await?;
    let pace = Pace {
        per_second: 1e9,
        concurrency: args.concurrency,
    };
    let delivery = DeliveryConfig {
        email: Some(SmtpConfig {
            url: format!("smtp://127.0.0.1:{smtp_port}"),
            folder: None,
            ca_file: None,
            username: None,
            password: Credential::default(),
            from: "Bench <bench@unavoce.example>".into(),
            pace,
        }),
        push: Some(WebhookConfig {
            url: format!("http://127.0.0.1:{webhook_port}/push"),
            secret: Credential {
                value: Some("bench-secret".into()),
                env: None,
            },
            pace,
        }),
        ..DeliveryConfig::default()
    };
    let policies = Arc::new(Policies::new(&PolicyConfig {
        quiet_hours: None,
        caps: Vec::new(),
        ..PolicyConfig::default()
    })?);
    let message = serde_json::from_value(json!({
        "id": "offer",
        "email": {"subject": "{{ first_name }}, our offer", "html": "<p>Hi {{ first_name }}, <a href=\"https://shop.example/offer\">see it</a></p>", "text": "Hi {{ first_name }}: https://shop.example/offer"},
        "push": {"title": "An offer for you", "body": "Hi {{ first_name }}, tap to see it"}
    }))?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteLog::open(dir.path(), SqliteOptions::default())?);
    let running = Running::start(
        store.clone(),
        Blueprint {
            policies,
            messages: vec![message],
            delivery,
            ..Blueprint::defaults("http://bench.invalid")?
        },
    )
    .await?;
    let state = &running.platform;

    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let mut batch: Vec<Map<String, Value>> = Vec::with_capacity(chunk.len() * 2);
        for &i in chunk {
            let user = format!("person-{i}");
            let mut identify = json!({"type": "identify", "userId": user,
                "traits": {"first_name": format!("Name{i}")}});
            if i % 2 == 0 {
                identify["traits"]["email"] = format!("{user}@example.com").into();
            } else {
                identify["context"] = json!({"device": {"id": format!("device-{i}")}});
            }
            let consent = json!({"type": "track", "userId": user, "event": "Consent Given",
                "properties": {"purpose": "promotional"}});
            for message in [identify, consent] {
                if let Value::Object(m) = message {
                    batch.push(m);
                }
            }
        }
        let report = state.intake.record("bench", batch, json!({})).await?;
        if !report.rejected.is_empty() {
            bail!("the bench's people were refused: {:?}", report.rejected[0]);
        }
    }
    state.identity.catch_up().await?;
    println!(
        "  {n} people loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // End to end: the broadcast's decisions and outbox rows, then the worker delivering.
    let rss_before = current_rss_kib();
    let started = Instant::now();
    let report = state
        .engagement
        .broadcast(
            &Broadcast {
                message: "offer".into(),
                audience: Audience::parse("consents.promotional")?,
                purpose: "promotional".into(),
                channel: "auto".into(),
                optimise_send_time: false,
                fallback_after: None,
                dry_run: false,
                list_limit: 0,
                renders: vec!["email", "push"],
            },
            Timestamp::now(),
        )
        .await?;
    let decided = started.elapsed().as_secs_f64();
    let sends = report.outcomes.get("send").copied().unwrap_or(0) as usize;
    if sends != n {
        bail!("expected {n} sends, the gate decided {:?}", report.outcomes);
    }
    let deadline = Instant::now() + Duration::from_secs(3_600);
    loop {
        let counts = store.outbox_counts().await?;
        let sent: u64 = counts
            .iter()
            .filter(|c| c.status == OutboxStatus::Sent)
            .map(|c| c.entries)
            .sum();
        let dead: u64 = counts
            .iter()
            .filter(|c| c.status == OutboxStatus::Dead)
            .map(|c| c.entries)
            .sum();
        if dead > 0 {
            bail!("{dead} messages were given up: {counts:?}");
        }
        if sent as usize == n {
            break;
        }
        if Instant::now() > deadline {
            bail!("the outbox did not empty: {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e2e = started.elapsed().as_secs_f64();
    let delivering = e2e - decided;
    let through_outbox = (mails.load(Ordering::Relaxed), posts.load(Ordering::Relaxed));
    if through_outbox.0 + through_outbox.1 != n as u64 {
        bail!("the sinks received {through_outbox:?}, expected {n} in all");
    }
    let server_growth = current_rss_kib().saturating_sub(rss_before);

    // Baseline: the same messages rendered and sent directly, the same concurrency per
    // provider, with no outbox (no claim, settlement, retry or recorded outcome).
    let mut entries = Vec::with_capacity(n);
    let mut after = None;
    loop {
        let page = store
            .outbox(OutboxQuery {
                after_id: after,
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        entries.extend(page);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for channel in ["email", "push"] {
        let mine: Vec<_> = entries
            .iter()
            .filter(|e| e.channel == channel)
            .cloned()
            .collect();
        let share = mine.len().div_ceil(args.concurrency.max(1)).max(1);
        for part in mine.chunks(share) {
            let (delivery, part) = (state.delivery.clone(), part.to_vec());
            tasks.spawn(async move {
                for entry in &part {
                    if let Err(e) = delivery.send_directly(entry).await {
                        return Err(anyhow::anyhow!("a direct send failed: {e:?}"));
                    }
                }
                Ok(())
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let direct = started.elapsed().as_secs_f64();
    let total = (mails.load(Ordering::Relaxed), posts.load(Ordering::Relaxed));
    if total.0 + total.1 != 2 * n as u64 {
        bail!("the sinks received {total:?} in all, expected {}", 2 * n);
    }
    running.stop().await;
    unavoce_store::EventLog::close(&*store).await;

    let e2e_rate = n as f64 / e2e;
    let delivery_rate = n as f64 / delivering;
    let direct_rate = n as f64 / direct;
    println!();
    println!("| measure | seconds | messages/s |");
    println!("|---|---|---|");
    println!(
        "| end to end: gate, decisions and outbox rows, rendering, delivery to the sinks | {e2e:.2} | {e2e_rate:.0} |"
    );
    println!(
        "| of which the broadcast's decisions (gate, decision log, outbox rows) | {decided:.2} | {:.0} |",
        n as f64 / decided
    );
    println!(
        "| of which delivery through the outbox (claim, render, send, event, settle) | {delivering:.2} | {delivery_rate:.0} |"
    );
    println!(
        "| baseline: the same messages rendered and sent directly | {direct:.2} | {direct_rate:.0} |"
    );
    println!();
    println!(
        "delivery through the outbox runs at {:.2}× the direct rate (outbox overhead {:.0}%); {} e-mails and {} pushes each way",
        delivery_rate / direct_rate,
        (direct_rate / delivery_rate - 1.0) * 100.0,
        through_outbox.0,
        through_outbox.1
    );
    println!(
        "memory: +{:.0} MiB during the broadcast, peak RSS {:.0} MiB",
        server_growth as f64 / 1024.0,
        peak_rss_kib() as f64 / 1024.0
    );
    Ok(())
}
