//! Client settings, stated explicitly. librdkafka's defaults differ from the
//! Java client's (e.g. `enable.idempotence` is off by default), so every
//! setting that matters for the guarantees under test is set here, not left
//! to a default, and recorded in the history (`f: "config"`).

use rdkafka::ClientConfig;
use serde::Serialize;

/// Settings of the producers. The defaults are the safe ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProducerSettings {
    /// `acks`: `"all"` (default), `"1"` or `"0"`.
    pub acks: String,
    /// `enable.idempotence` (default true). librdkafka then forces acks=all,
    /// at most 5 requests in flight and unlimited internal retries.
    pub enable_idempotence: bool,
    /// `message.timeout.ms`: how long librdkafka tries to deliver one
    /// message before reporting an error (default 5000; librdkafka's own
    /// default of 300000 would hide every fault from the test).
    pub message_timeout_ms: u64,
    /// `request.timeout.ms` (default 3000, below the message timeout).
    pub request_timeout_ms: u64,
    /// `max.in.flight.requests.per.connection` (default 5, the most
    /// idempotence allows).
    pub max_in_flight: u32,
    /// `linger.ms`: batching delay (default 5).
    pub linger_ms: u64,
    /// `retry.backoff.ms` of librdkafka's internal retries (default 100).
    pub retry_backoff_ms: u64,
    /// Any further `librdkafka` properties, applied last.
    pub extra: Vec<(String, String)>,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        ProducerSettings {
            acks: "all".into(),
            enable_idempotence: true,
            message_timeout_ms: 5000,
            request_timeout_ms: 3000,
            max_in_flight: 5,
            linger_ms: 5,
            retry_backoff_ms: 100,
            extra: Vec::new(),
        }
    }
}

impl ProducerSettings {
    /// The librdkafka properties these settings stand for, in the order
    /// they are applied (without `bootstrap.servers`).
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = vec![
            ("acks".into(), self.acks.clone()),
            (
                "enable.idempotence".into(),
                self.enable_idempotence.to_string(),
            ),
            (
                "message.timeout.ms".into(),
                self.message_timeout_ms.to_string(),
            ),
            (
                "request.timeout.ms".into(),
                self.request_timeout_ms.to_string(),
            ),
            (
                "max.in.flight.requests.per.connection".into(),
                self.max_in_flight.to_string(),
            ),
            ("linger.ms".into(), self.linger_ms.to_string()),
            ("retry.backoff.ms".into(), self.retry_backoff_ms.to_string()),
        ];
        p.extend(self.extra.iter().cloned());
        p
    }

    /// A librdkafka configuration for `bootstrap`.
    pub fn client_config(&self, bootstrap: &str) -> ClientConfig {
        client_config(bootstrap, self.properties())
    }
}

/// Settings of the consumers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsumerSettings {
    /// `group.id` of the consumer group (also used in assign mode, for
    /// commits).
    pub group_id: String,
    /// `session.timeout.ms` (default 6000).
    pub session_timeout_ms: u64,
    /// `auto.offset.reset` (default `earliest`: a new group reads from the
    /// start).
    pub auto_offset_reset: String,
    /// `isolation.level` (default `read_committed`).
    pub isolation_level: String,
    /// Any further `librdkafka` properties, applied last.
    pub extra: Vec<(String, String)>,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            group_id: "splitbrain".into(),
            session_timeout_ms: 6000,
            auto_offset_reset: "earliest".into(),
            isolation_level: "read_committed".into(),
            extra: Vec::new(),
        }
    }
}

impl ConsumerSettings {
    /// The librdkafka properties these settings stand for. Auto-commit is
    /// always off: offsets are committed by hand after processing.
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = vec![
            ("group.id".into(), self.group_id.clone()),
            ("enable.auto.commit".into(), "false".into()),
            ("enable.auto.offset.store".into(), "false".into()),
            (
                "session.timeout.ms".into(),
                self.session_timeout_ms.to_string(),
            ),
            ("auto.offset.reset".into(), self.auto_offset_reset.clone()),
            ("isolation.level".into(), self.isolation_level.clone()),
        ];
        p.extend(self.extra.iter().cloned());
        p
    }

    /// A librdkafka configuration for `bootstrap`.
    pub fn client_config(&self, bootstrap: &str) -> ClientConfig {
        client_config(bootstrap, self.properties())
    }
}

/// A librdkafka configuration: `bootstrap` plus `properties`, in order.
fn client_config(bootstrap: &str, properties: Vec<(String, String)>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_defaults_are_explicit() {
        let p = ProducerSettings::default().properties();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("acks"), Some("all"));
        assert_eq!(get("enable.idempotence"), Some("true"));
        assert_eq!(get("message.timeout.ms"), Some("5000"));
        assert_eq!(get("max.in.flight.requests.per.connection"), Some("5"));
        let c = ProducerSettings {
            acks: "1".into(),
            enable_idempotence: false,
            extra: vec![("compression.type".into(), "lz4".into())],
            ..ProducerSettings::default()
        }
        .client_config("10.88.0.2:9092");
        assert_eq!(c.get("acks"), Some("1"));
        assert_eq!(c.get("enable.idempotence"), Some("false"));
        assert_eq!(c.get("compression.type"), Some("lz4"));
        assert_eq!(c.get("bootstrap.servers"), Some("10.88.0.2:9092"));
        let c = ConsumerSettings::default().client_config("x:1");
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
    }
}
