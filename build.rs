//! Host builds (`cargo test`) need nothing. A Windows build with feature
//! `driver` configures the WDK link (wdk-build: `/DRIVER /KERNEL
//! /ENTRY:DriverEntry /INTEGRITYCHECK ...`) and compiles the C shim
//! (`src/windows/shim.c`, `__try/__except`) with the WDK's include paths and
//! defines, so the same lines work with the eWDK and with `tools/wdk-cross`.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "driver")]
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows") {
        driver::configure();
    }
}

#[cfg(feature = "driver")]
mod driver {
    pub fn configure() {
        wdk_build::configure_wdk_binary_build().expect("wdk-build could not configure the driver build");

        let config = wdk_build::Config::from_env_auto().expect("wdk-build could not read the WDK configuration");
        let mut shim = cc::Build::new();
        shim.file("src/windows/shim.c")
            .includes(config.include_paths().expect("wdk-build could not list the WDK include paths"));
        for (key, value) in config.preprocessor_definitions() {
            shim.define(&key, value.as_deref());
        }
        shim.compile("mlnx_hca_shim");
        println!("cargo::rerun-if-changed=src/windows/shim.c");
    }
}
