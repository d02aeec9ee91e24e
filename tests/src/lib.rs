//! Multi-process tests of Elastickv: real `elastickv` processes on loopback,
//! started through `elastickv_chaos::cluster`. The tests live in `tests/`.
