/* Versions the firmware reports (HELLO, banner). */
#ifndef EK_VERSION_H
#define EK_VERSION_H

#define EK_FW_MAJOR 0
#define EK_FW_MINOR 3
#define EK_FW_PATCH 0
#define EK_PROTOCOL_VERSION 1

/* Model package format the executor reads (docs/model-package.md). */
#define EK_PACKAGE_FORMAT_MAJOR 2 /* 2 (firmware 0.3.0 on): the full SHA-256 in the header */
#define EK_PACKAGE_FORMAT_MINOR 1

#endif /* EK_VERSION_H */
