//! The core's PnP answers in the window the simulator cannot hold open: a
//! file object whose handles are all closed (`IRP_MJ_CLEANUP` ran) while a
//! request on it still completes, so its `IRP_MJ_CLOSE` is still to come. On
//! Windows that close would reach a device `REMOVE_DEVICE` tore down if the
//! removal had been agreed; the core refuses it until the close.

use mlnx_hca::core::{BarSizes, Config, Device, PageSpan, Platform, PnpState};
use mlnx_hca::Status;

/// A platform that never has to map: these tests open and close contexts only.
struct NoViews;

impl Platform for NoViews {
    type View = ();

    fn map_view(&mut self, _span: PageSpan, _writable: bool) -> mlnx_hca::Result<((), u64)> {
        Err(Status::INSUFFICIENT_RESOURCES)
    }

    fn unmap_view(&mut self, _view: ()) {}

    fn keep_system_awake(&mut self, _awake: bool) {}
}

fn started() -> Device<NoViews> {
    let mut device = Device::new(NoViews, Config::DEFAULT);
    device.start(BarSizes { bar0: 1 << 20, bar1: 0, bar2: 0 });
    device
}

#[test]
fn removal_and_stop_wait_for_the_close_that_follows_a_cleanup() {
    let mut device = started();
    let ca = device.open().unwrap();
    device.cleanup(ca);
    assert_eq!(device.open_handles(), 0, "no handle is open");
    assert_eq!(device.query_remove(), Err(Status::DEVICE_BUSY), "but the file object awaits its close");
    device.cancel_remove();
    assert_eq!(device.query_stop(), Err(Status::DEVICE_BUSY));
    device.cancel_stop();
    assert_eq!(device.state(), PnpState::Started, "a refused query changes nothing");
    assert_eq!(device.close(ca), 0);
    assert_eq!(device.query_remove(), Ok(()));
    assert_eq!(device.open(), Err(Status::DELETE_PENDING), "opens wait for the cancel");
    device.cancel_remove();
    assert!(device.open().is_ok(), "and are served after it");
}
