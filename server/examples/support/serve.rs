//! Serving a shop from a thread of its own, for the server's load
//! examples (included with `#[path]`).

use liteshop::Shop;

/// Serves `shop` on a free loopback port from a thread of its own, with
/// its own runtime: its base URL.
pub fn serve(shop: Shop, config: liteshop_server::Config) -> String {
    let app = liteshop_server::router(shop, config);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    format!("http://{}", rx.recv().expect("the server's address"))
}
