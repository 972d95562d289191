//! Which dead letters an operation takes: the options every `intake dlq` operation shares,
//! the same filters the HTTP API has.

use crate::context::parse_time;
use anyhow::Result;
use chrono::{DateTime, Utc};
use intake_pipeline::store::DeadLetterFilter;
use uuid::Uuid;

/// Which open dead letters an operation takes.
#[derive(Debug, clap::Args)]
pub struct Select {
    /// Only this tenant's.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only these letters (repeatable).
    #[arg(long = "id")]
    pub ids: Vec<Uuid>,
    /// Only letters with this reason code.
    #[arg(long)]
    pub code: Option<String>,
    /// Only messages of this type (`ADT^A01`, or a FHIR resource type).
    #[arg(long = "type")]
    pub message_type: Option<String>,
    /// Only messages from this sending facility (MSH-4).
    #[arg(long)]
    pub facility: Option<String>,
    /// Only messages received at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Only messages received before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// Only letters after this id: resumes a bulk operation where its progress line
    /// says it got to.
    #[arg(long)]
    pub after: Option<Uuid>,
    /// At most this many letters in all.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Letters per transaction: each batch commits (with its audit entry) on its own.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub batch: i64,
}

impl Select {
    /// The first batch's filter.
    pub fn filter(&self) -> DeadLetterFilter {
        DeadLetterFilter {
            tenant: self.tenant.clone(),
            ids: self.ids.clone(),
            code: self.code.clone(),
            message_type: self.message_type.clone(),
            sending_facility: self.facility.clone(),
            since: self.since,
            until: self.until,
            after: self.after,
            limit: self.batch,
        }
    }

    /// Whether anything narrows the selection beyond tenant and limit.
    pub fn narrows(&self) -> bool {
        !self.ids.is_empty()
            || self.code.is_some()
            || self.message_type.is_some()
            || self.facility.is_some()
            || self.since.is_some()
            || self.until.is_some()
    }

    /// " of tenant T", or nothing.
    pub fn of_tenant(&self) -> String {
        self.tenant
            .as_ref()
            .map(|t| format!(" of tenant {t}"))
            .unwrap_or_default()
    }
}

/// Runs `batch` over the selection a page at a time until it is exhausted or `limit`
/// letters are done. `batch` gets the page's filter and returns the ids it took (in id
/// order); the next page starts after the last of them. `progress` is told the running
/// total and the last id after each page.
pub async fn in_batches<F, Fut>(
    select: &Select,
    mut batch: F,
    mut progress: impl FnMut(usize, Uuid),
) -> Result<Vec<Uuid>>
where
    F: FnMut(DeadLetterFilter) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Uuid>>>,
{
    let mut filter = select.filter();
    let mut done = Vec::new();
    loop {
        let left = select.limit.map_or(usize::MAX, |l| l - done.len());
        filter.limit = filter.limit.min(i64::try_from(left).unwrap_or(i64::MAX));
        if filter.limit == 0 {
            return Ok(done);
        }
        let ids = batch(filter.clone()).await?;
        let Some(&last) = ids.iter().max() else {
            return Ok(done);
        };
        done.extend(ids);
        progress(done.len(), last);
        filter.after = Some(last);
    }
}
