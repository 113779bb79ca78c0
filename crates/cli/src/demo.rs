//! `unavoce demo`: the Voce Telecom demo company (`unavoce-demo`), built in a fresh data
//! folder and served.

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;
use crate::keys;
use crate::serve::{Setup, serve};

#[derive(Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Data folder for the demo; rebuilt on every run.
    #[arg(long, default_value = "./unavoce-demo-data")]
    data: PathBuf,
    /// Number of customers.
    #[arg(long, default_value_t = 3000)]
    customers: usize,
    /// Build the data and exit without serving.
    #[arg(long)]
    no_serve: bool,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let company = unavoce_demo::build(&args.data, args.customers).await?;
    if args.no_serve {
        return Ok(());
    }
    let keys = keys::resolve(&args.data, None, None)?;
    let banner = unavoce_demo::guide(&args.listen, &keys.write_key, &keys.admin_key);
    let config = Config {
        touchpoints: company.touchpoints,
        segments: company.segments,
        journeys: company.journeys,
        messages: company.messages,
        subscriptions: company.subscriptions,
        delivery: company.delivery,
        ..Config::default()
    };
    serve(Setup {
        config,
        data: args.data,
        listen: args.listen,
        keys,
        banner: Some(banner),
        node: None,
        config_file: None,
    })
    .await
}
