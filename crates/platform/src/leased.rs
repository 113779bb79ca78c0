//! Work one node does at a time among those sharing a store: started when this node
//! takes the work's lease, stopped at once when it loses it, taken up again by whichever
//! node asks next.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use unavoce_core::redact::Redacted;
use unavoce_store::Leases;

/// How often a node asks for a lease another node holds: how soon work is taken over
/// when its node dies.
pub const LEASE_RETRY: Duration = Duration::from_secs(1);

/// What a node does before it starts leased work: load what the previous holder left
/// (its cursor, its runs) from the store.
pub type Resume =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Runs `start`'s task while this node holds the lease on `work`: asks for the lease
/// every [`LEASE_RETRY`] while another node holds it; once taken, `resume`s, then starts
/// the work; aborts it when the lease is lost (at its next await: a write already handed
/// to the store still commits), and asks again. Work that panics is started again the
/// same way; work that ends (nothing to do, e.g. no retention configured) is over.
pub fn leased(
    leases: Arc<dyn Leases>,
    work: &'static str,
    resume: Resume,
    start: Arc<dyn Fn() -> JoinHandle<()> + Send + Sync>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let mut lease = match leases.try_lease(work).await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    tokio::time::sleep(LEASE_RETRY).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %Redacted(&e), work, "a lease could not be asked for; retrying");
                    tokio::time::sleep(LEASE_RETRY).await;
                    continue;
                }
            };
            if let Err(e) = resume().await {
                tracing::warn!(error = %Redacted(&e), work, "leased work could not resume; retrying");
                drop(lease);
                tokio::time::sleep(LEASE_RETRY).await;
                continue;
            }
            tracing::debug!(work, "this node took the lease");
            let mut running = AbortOnDrop(start());
            tokio::select! {
                ended = &mut running.0 => {
                    if ended.is_ok() {
                        return;
                    }
                    tracing::error!(work, "leased work failed; it starts again");
                    drop(lease);
                    tokio::time::sleep(LEASE_RETRY).await;
                }
                _ = lease.lost() => {
                    tracing::warn!(work, "this node lost the lease; the work stops here");
                }
            }
        }
    })
}

/// A task aborted when its handle is dropped (a leased task stops with its supervisor).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
