//! The four demo services as separate processes on picked 127.0.0.1 ports,
//! each set up by `baton::init()` from the `OTEL_*` environment it is given,
//! as `docker-compose.yml` runs them; killed when dropped, however the test
//! ends.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the services (and a backend) get to open their ports.
pub(crate) const READY_WITHIN: Duration = Duration::from_secs(60);

/// A 127.0.0.1 port nothing listens on right now.
pub(crate) fn pick_free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub(crate) fn wait_for_port(port: u16) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < READY_WITHIN,
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The running services; `gateway` is the port to send checkouts to.
pub(crate) struct Services {
    children: Vec<Child>,
    pub(crate) gateway: u16,
}

impl Services {
    /// Starts inventory, pricing, orders and gateway with `env` (the
    /// exporter settings) on top of fast export intervals, and waits until
    /// all four listen.
    pub(crate) fn start(env: &[(&str, String)]) -> Services {
        let [gateway, orders, inventory, pricing] = [(); 4].map(|()| pick_free_port());
        let common = [
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500".to_owned()),
            ("OTEL_BLRP_SCHEDULE_DELAY", "100".to_owned()),
            ("NO_COLOR", "1".to_owned()),
        ];
        let mut services = Services {
            children: Vec::new(),
            gateway,
        };
        let mut spawn = |exe: &str, name: &str, own: &[(&str, String)]| {
            let mut cmd = Command::new(exe);
            cmd.env_remove("OTEL_PROPAGATORS")
                .env("OTEL_SERVICE_NAME", name)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (k, v) in common.iter().chain(env).chain(own) {
                cmd.env(k, v);
            }
            // Pushed one by one so those already started are killed if a
            // later one fails to start.
            services.children.push(
                cmd.spawn()
                    .unwrap_or_else(|e| panic!("cannot start {name}: {e}")),
            );
        };
        spawn(
            env!("CARGO_BIN_EXE_inventory"),
            "inventory",
            &[("INVENTORY_ADDR", format!("127.0.0.1:{inventory}"))],
        );
        spawn(
            env!("CARGO_BIN_EXE_pricing"),
            "pricing",
            &[("PRICING_ADDR", format!("127.0.0.1:{pricing}"))],
        );
        spawn(
            env!("CARGO_BIN_EXE_orders"),
            "orders",
            &[
                ("ORDERS_ADDR", format!("127.0.0.1:{orders}")),
                ("INVENTORY_URL", format!("http://127.0.0.1:{inventory}")),
            ],
        );
        spawn(
            env!("CARGO_BIN_EXE_gateway"),
            "gateway",
            &[
                ("GATEWAY_ADDR", format!("127.0.0.1:{gateway}")),
                ("ORDERS_URL", format!("http://127.0.0.1:{orders}")),
                ("PRICING_URL", format!("http://127.0.0.1:{pricing}")),
            ],
        );
        for port in [inventory, pricing, orders, gateway] {
            wait_for_port(port);
        }
        services
    }

    /// `GET /checkout/{sku}` at the gateway as `tenant`/`user`; the status.
    pub(crate) fn checkout(&self, sku: &str, tenant: &str, user: &str) -> http::StatusCode {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            reqwest::Client::new()
                .get(format!("http://127.0.0.1:{}/checkout/{sku}", self.gateway))
                .header("x-tenant", tenant)
                .header("x-user", user)
                .send()
                .await
                .expect("the gateway answers")
                .status()
        })
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
