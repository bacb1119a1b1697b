/*
 * edgekit firmware: prints the boot banner, then answers the serial protocol
 * (docs/serial-protocol.md) forever.
 */
#include "ek_board.h"
#include "ek_proto.h"

int main(void) {
  uint8_t banner[128];
  ek_board_init();
  ek_proto_init();
  ek_uart_write(banner, ek_proto_banner(banner, sizeof banner));
  for (;;) {
    const int c = ek_uart_read();
    if (c < 0) {
      ek_board_idle();
      continue;
    }
    if (ek_proto_feed((uint8_t)c)) {
      ek_uart_flush();
      ek_board_reset();
    }
  }
}
