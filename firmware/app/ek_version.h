/* Versions the firmware reports (HELLO, banner). */
#ifndef EK_VERSION_H
#define EK_VERSION_H

#define EK_FW_MAJOR 0
#define EK_FW_MINOR 2
#define EK_FW_PATCH 0
#define EK_PROTOCOL_VERSION 1

/* Model package format the executor reads (docs/model-package.md). */
#define EK_PACKAGE_FORMAT_MAJOR 1
#define EK_PACKAGE_FORMAT_MINOR 0

#endif /* EK_VERSION_H */
