//! Everything the handlers and the job runners share, built once in `main`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::config::{Settings, Startup};
use crate::events::Events;
use crate::faults::{parse_env, Fault, FaultBook, FaultError};
use crate::ids::IdGenerator;
use crate::store::Store;

pub struct AppState {
    pub s3: aws_sdk_s3::Client,
    pub region: String,
    pub account_id: String,
    /// The job events to EventBridge and their fault switch.
    pub events: Events,
    initial_settings: Settings,
    initial_faults: Vec<(String, Vec<Fault>)>,
    settings: RwLock<Settings>,
    store: Mutex<Store>,
    faults: Mutex<FaultBook>,
    ids: Mutex<IdGenerator>,
    /// Bumped by a reset: runners of an older generation stop at their next step.
    generation: AtomicU64,
}

/// A panic while a lock is held leaves plain data behind, still usable: no lock here guards an invariant that a
/// half-finished update could break.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The job was removed by a reset while its runner was waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

impl AppState {
    pub fn new(s3: aws_sdk_s3::Client, startup: &Startup, id_seed: u64) -> Result<Self, FaultError> {
        let initial_faults = startup
            .faults
            .as_deref()
            .map(parse_env)
            .transpose()?
            .unwrap_or_default();
        let state = Self {
            s3,
            region: startup.region.clone(),
            account_id: startup.account_id.clone(),
            events: Events::new(startup.events.clone(), &startup.region, &startup.account_id),
            initial_settings: startup.settings.clone(),
            initial_faults,
            settings: RwLock::new(startup.settings.clone()),
            store: Mutex::new(Store::default()),
            faults: Mutex::new(FaultBook::default()),
            ids: Mutex::new(IdGenerator::new(id_seed)),
            generation: AtomicU64::new(0),
        };
        state.install_initial_faults();
        Ok(state)
    }

    fn install_initial_faults(&self) {
        let mut book = self.faults();
        book.clear();
        for (m, f) in &self.initial_faults {
            book.add(m.clone(), f.clone());
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn update_settings<R>(&self, f: impl FnOnce(&mut Settings) -> R) -> R {
        f(&mut self.settings.write().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub fn faults(&self) -> MutexGuard<'_, FaultBook> {
        lock(&self.faults)
    }

    pub fn request_id(&self) -> String {
        lock(&self.ids).request_id()
    }

    /// A fresh 12-character id and its ARN (docs/bedrock.md#creating-a-job).
    pub fn new_job_id(&self) -> (String, String) {
        let store = self.store();
        let mut ids = lock(&self.ids);
        let id = loop {
            let id = ids.job_id();
            if !store.contains(&id) {
                break id;
            }
        };
        let arn = format!(
            "arn:aws:bedrock:{}:{}:model-invocation-job/{id}",
            self.region, self.account_id
        );
        (id, arn)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Forget every job, token and fault; settings and faults go back to their start-up values, the event
    /// faults to none and their counters to zero.
    pub fn reset(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.store() = Store::default();
        *self.settings.write().unwrap_or_else(PoisonError::into_inner) = self.initial_settings.clone();
        self.install_initial_faults();
        self.events.reset();
    }

    /// One lifecycle step of `step_ms`. The wait is re-measured against the current setting every few
    /// milliseconds, so that a step change through the admin API (or a reset) takes effect at once.
    pub async fn pause(&self, generation: u64) -> Result<(), Gone> {
        const TICK: Duration = Duration::from_millis(20);
        let start = Instant::now();
        loop {
            if self.generation() != generation {
                return Err(Gone);
            }
            let step = Duration::from_millis(self.settings().step_ms);
            let elapsed = start.elapsed();
            if elapsed >= step {
                return Ok(());
            }
            tokio::time::sleep((step - elapsed).min(TICK)).await;
        }
    }
}
