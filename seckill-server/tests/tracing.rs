//! OpenTelemetry tracing end to end: the server's subscriber exports over OTLP/HTTP to a
//! collector this test runs (it decodes the protobuf export requests), and one buy's spans
//! arrive as one trace with the expected parents: the caller's `traceparent` → the HTTP
//! request → the reserve → the relay (across the outbox) → the order worker's delivery (across
//! the broker, in the message's `traceparent` header) → its database transaction, and the
//! payment's settlement (across the order, which keeps the context), linked to the provider's
//! callback request. Once per
//! broker: memory, Redis Streams, RabbitMQ and Kafka (each needs its `SECKILL_TEST_*` URL).

mod support;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use seckill_core::conformance::{service_url, unique_id};
use seckill_server::config::{LogConfig, TelemetryConfig};
use seckill_server::telemetry::Telemetry;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// One exported span, as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    /// Span ids of its links.
    links: Vec<String>,
}

/// An OTLP/HTTP collector on 127.0.0.1:`port`, on a thread and runtime of its own (the
/// exporter's flush blocks the test's thread while this answers).
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Received>>>);

impl Collector {
    fn start(port: u16) -> Self {
        let c = Collector::default();
        let spans = c.0.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/v1/traces",
                    axum::routing::post(move |body: Bytes| {
                        let spans = spans.clone();
                        async move {
                            let req = ExportTraceServiceRequest::decode(body)
                                .expect("an OTLP protobuf export request");
                            let mut got = spans.lock().unwrap();
                            for rs in req.resource_spans {
                                for ss in rs.scope_spans {
                                    for s in ss.spans {
                                        got.push(Received {
                                            name: s.name,
                                            trace_id: hex::encode(s.trace_id),
                                            span_id: hex::encode(s.span_id),
                                            parent: hex::encode(s.parent_span_id),
                                            links: s
                                                .links
                                                .iter()
                                                .map(|l| hex::encode(&l.span_id))
                                                .collect(),
                                        });
                                    }
                                }
                            }
                            (
                                [("content-type", "application/x-protobuf")],
                                ExportTraceServiceResponse::default().encode_to_vec(),
                            )
                        }
                    }),
                );
                let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap_or_else(|e| panic!("collector port {port}: {e}"));
                ready_tx.send(()).unwrap();
                axum::serve(l, app).await.unwrap();
            });
        });
        ready_rx.recv().unwrap();
        c
    }

    fn spans(&self) -> Vec<Received> {
        self.0.lock().unwrap().clone()
    }
}

/// Log lines written into memory.
#[derive(Clone, Default)]
struct LogLines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogLines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for LogLines {
    type Writer = LogLines;
    fn make_writer(&'w self) -> LogLines {
        self.clone()
    }
}

impl LogLines {
    /// Every line, each parsed as JSON (a line that is not JSON fails the test).
    fn json(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// A sale on `broker` (memory when `None`), traced to a collector on `port`; checks the trace.
async fn one_buy_is_one_trace(broker: Option<String>, port: u16) {
    let collector = Collector::start(port);
    let telemetry_cfg = TelemetryConfig {
        otlp_endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..TelemetryConfig::default()
    };
    let telemetry = Telemetry::new(&telemetry_cfg).unwrap();
    assert!(telemetry.enabled());
    let log = LogConfig {
        format: "json".into(),
        level: "info,seckill_server::access=debug".into(),
    };
    let lines = LogLines::default();
    let _guard = tracing::subscriber::set_default(telemetry.subscriber_to(&log, lines.clone()));
    let a = api_with(true, |cfg| {
        cfg.telemetry = telemetry_cfg;
        if let Some(b) = broker {
            cfg.backends.broker = b;
        }
    })
    .await;
    let e = a.state.engine.clone();
    // The order workers' group exists before the relay publishes.
    let mut worker = e.order_worker().await.unwrap();
    let token = a.user("traced").await;
    let act = a.demo_activity().await;
    let caller_trace = format!("{:032x}", rand::random::<u128>() | 1);
    let caller_span = "00f067aa0ba902b7";
    let r = a
        .raw(
            "POST",
            &format!("/api/v1/seckill/activities/{act}/buy"),
            Some(&token),
            Some(json!({"quantity": 1}).to_string()),
            &[(
                "traceparent",
                &format!("00-{caller_trace}-{caller_span}-01"),
            )],
        )
        .await;
    assert_eq!(r.code(), 0, "{}", r.body);
    assert_eq!(
        r.body["trace_id"], caller_trace,
        "the answer carries the caller's trace id"
    );
    let order_id = r.data()["order_id"].as_str().unwrap().to_string();
    // Relay, then consume until the order is written (a broker may take a moment).
    while e.relay_once().await.unwrap() > 0 {}
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        worker.run_once(Duration::from_millis(200)).await.unwrap();
        let id = seckill_core::domain::OrderId(order_id.parse().unwrap());
        if e.backends().orders.order(id).await.unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the order was never written");
    }
    // The buyer pays; the provider's signed callback settles the order.
    let pay = a
        .call(
            "POST",
            "/api/v1/payment/create",
            Some(&token),
            Some(json!({"order_id": order_id})),
        )
        .await;
    let payment = a.payment_record(&pay.data()["payment_id"]).await;
    let cb = a.state.mock.as_ref().unwrap().pay(&payment);
    let sig = cb.headers["x-mock-signature"].clone();
    let r = a
        .raw(
            "POST",
            "/api/v1/payment/callback/mock",
            None,
            Some(String::from_utf8(cb.body.clone()).unwrap()),
            &[("x-mock-signature", &sig)],
        )
        .await;
    assert_eq!(r.data()["result"], "paid", "{}", r.body);
    // Spans end when their work does; the worker's delivery span ends at its ack.
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        telemetry.flush();
        let spans: Vec<Received> = collector
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == caller_trace)
            .collect();
        if ["db.create_orders", "order_worker.deliver", "payment.settle"]
            .iter()
            .all(|n| spans.iter().any(|s| s.name == *n))
        {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "the trace never arrived whole: {spans:#?}\nall: {:#?}",
            collector.spans()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let named = |name: &str| -> &Received {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in the trace: {spans:#?}"))
    };
    let http = named("POST /api/v1/seckill/activities/{id}/buy");
    let reserve = named("stock.reserve");
    let relay = named("outbox.relay");
    let deliver = named("order_worker.deliver");
    let db = named("db.create_orders");
    assert_eq!(
        http.parent, caller_span,
        "the request continues the caller's trace"
    );
    assert_eq!(reserve.parent, http.span_id, "{spans:#?}");
    assert_eq!(
        relay.parent, reserve.span_id,
        "across the outbox: {spans:#?}"
    );
    assert_eq!(
        deliver.parent, relay.span_id,
        "across the broker: {spans:#?}"
    );
    assert_eq!(db.parent, deliver.span_id, "{spans:#?}");
    // The settlement joins the buy's trace (through the order) and links to the callback's
    // request, which is a trace of its own.
    let settle = named("payment.settle");
    assert_eq!(settle.parent, deliver.span_id, "{spans:#?}");
    let all = collector.spans();
    let callback = all
        .iter()
        .find(|s| s.name == "POST /api/v1/payment/callback/{provider}")
        .unwrap_or_else(|| panic!("no callback request span: {all:#?}"));
    assert_ne!(callback.trace_id, caller_trace);
    assert_eq!(settle.links, vec![callback.span_id.clone()], "{settle:?}");
    // The buy's access log line carries the trace's ids.
    let logged = lines.json();
    let access = logged
        .iter()
        .find(|l| l["target"] == "seckill_server::access" && l["trace_id"] == caller_trace)
        .unwrap_or_else(|| panic!("no access line of the buy: {logged:#?}"));
    assert_eq!(access["span_id"], http.span_id.as_str(), "{access}");
    assert_eq!(access["level"], "DEBUG");
    assert_eq!(access["status"], 202, "{access}");
    telemetry.shutdown();
}

#[tokio::test]
async fn one_buy_is_one_trace_on_the_memory_broker() {
    one_buy_is_one_trace(None, 18301).await;
}

#[tokio::test]
async fn one_buy_is_one_trace_on_redis_streams() {
    let Some(url) = service_url("SECKILL_TEST_REDIS_URL") else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let broker =
        format!("{url}{sep}prefix=trace{}", unique_id()).replacen("redis:", "redis-stream:", 1);
    one_buy_is_one_trace(Some(broker), 18302).await;
}

#[tokio::test]
async fn one_buy_is_one_trace_on_rabbitmq() {
    let Some(url) = service_url("SECKILL_TEST_AMQP_URL") else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let broker = format!(
        "{url}{sep}groups=order-workers&prefix=trace{}&expires=60000",
        unique_id()
    );
    one_buy_is_one_trace(Some(broker), 18303).await;
}

#[tokio::test]
async fn one_buy_is_one_trace_on_kafka() {
    let Some(brokers) = service_url("SECKILL_TEST_KAFKA_BROKERS") else {
        return;
    };
    let broker = format!(
        "kafka://{brokers}?prefix=trace{}&producer.batch.num.messages=1",
        unique_id()
    );
    one_buy_is_one_trace(Some(broker), 18304).await;
}
