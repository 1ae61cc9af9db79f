#pragma once
// The "adminUi" configuration (services/CONFIG.md): the server side of the official Socket.IO
// Admin UI (@socket.io/admin-ui 0.5), for the whole cluster. Parsed by services/config.

#include <cstddef>
#include <string>

namespace switchboard::admin_ui {

struct Options {
  std::string nsp = "/admin";  // the namespace the UI connects to
  // Basic authentication; false ("auth": false) turns the login off (warned at start).
  bool auth = true;
  std::string username;
  std::string password_hash;  // bcrypt ($2a$, $2b$, $2y$), as the reference's
  bool development = true;    // "mode": "development" (the reference's default) | "production"
  bool readonly = false;
  size_t max_listed_sockets = 1000;  // all_sockets lists at most this many
  // Where the edge serves the UI's built files; empty ("uiPath": false): not served.
  std::string ui_path = "/admin-ui/";
  // The UI's files; empty: admin-ui beside the binary's folder (the build's build/admin-ui).
  std::string ui_dir;
};

}  // namespace switchboard::admin_ui
