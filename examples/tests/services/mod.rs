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
    /// Each service's process and the file its standard output goes to.
    children: Vec<(Child, std::path::PathBuf)>,
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
            let out = std::env::temp_dir()
                .join(format!("baton-{name}-{}-{gateway}.out", std::process::id()));
            let file = std::fs::File::create(&out).expect("a file for the output");
            let mut cmd = Command::new(exe);
            cmd.env_remove("OTEL_PROPAGATORS")
                .env("OTEL_SERVICE_NAME", name)
                .stdout(file)
                .stderr(Stdio::null());
            for (k, v) in common.iter().chain(env).chain(own) {
                cmd.env(k, v);
            }
            // Pushed one by one so those already started are killed if a
            // later one fails to start.
            services.children.push((
                cmd.spawn()
                    .unwrap_or_else(|e| panic!("cannot start {name}: {e}")),
                out,
            ));
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

    /// Sends SIGTERM to every service, as `docker compose down` does,
    /// waits for each to exit (within `within`), and returns the last line
    /// each printed.
    #[allow(dead_code, reason = "each test crate uses part of this module")]
    pub(crate) fn terminate(&mut self, within: Duration) -> Vec<String> {
        for (child, _) in &self.children {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success(), "kill -TERM {}", child.id());
        }
        let started = Instant::now();
        let mut last_lines = Vec::new();
        for (child, out) in self.children.drain(..) {
            let mut child = child;
            while child.try_wait().expect("a status").is_none() {
                assert!(started.elapsed() < within, "a service ignored SIGTERM");
                std::thread::sleep(Duration::from_millis(50));
            }
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            let _ = std::fs::remove_file(&out);
            last_lines.push(text.lines().last().unwrap_or_default().to_owned());
        }
        last_lines
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for (child, out) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(out);
        }
    }
}
