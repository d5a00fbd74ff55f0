//! Host builds (`cargo test`) need nothing. A Windows build with feature
//! `driver` configures the WDK link and compiles the C shim.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "driver")]
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows") {
        driver::configure();
    }
}

#[cfg(feature = "driver")]
mod driver {
    pub fn configure() {
        wdk_build::configure_wdk_binary_build()
            .expect("wdk-build could not configure the driver build");
    }
}
