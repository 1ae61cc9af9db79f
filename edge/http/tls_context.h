#pragma once

#include <absl/status/statusor.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

namespace switchboard::edge {

// Server TLS for the client listener (HTTPS / WSS): TLS 1.2 or newer, the
// certificate chain (leaf first) and its private key from PEM files.
// INVALID_ARGUMENT naming the file when one cannot be read or they do not
// match.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> LoadServerTls(
    const std::string& cert_chain_file, const std::string& key_file);

}  // namespace switchboard::edge
