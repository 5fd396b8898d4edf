// What a failed request step means: its Failure kind and the words for the operator.

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "http/detail.hpp"

namespace gio::http {

std::string_view to_string(Failure failure) {
  switch (failure) {
    case Failure::resolve:
      return "resolve";
    case Failure::connect:
      return "connect";
    case Failure::tls:
      return "tls";
    case Failure::timeout:
      return "timeout";
    case Failure::reset:
      return "reset";
    case Failure::protocol:
      return "protocol";
    case Failure::too_large:
      return "too_large";
    case Failure::redirect:
      return "redirect";
    case Failure::io:
      return "io";
    case Failure::refused:
      return "refused";
  }
  return "unknown";
}

namespace detail {

bool is_closed(const error_code& ec) {
  return ec == asio::error::eof || ec == bhttp::error::end_of_stream ||
         ec == bhttp::error::partial_message || ec == ssl::error::stream_truncated ||
         ec == asio::error::connection_reset || ec == asio::error::connection_aborted ||
         ec == asio::error::broken_pipe;
}

Failure classify(const error_code& ec, Failure step_failure) {
  if (ec == beast::error::timeout) {
    return Failure::timeout;
  }
  if (is_closed(ec)) {
    return Failure::reset;
  }
  if (ec == bhttp::error::header_limit || ec == bhttp::error::body_limit) {
    return Failure::too_large;
  }
  if (ec.category() == bhttp::make_error_code(bhttp::error::end_of_stream).category()) {
    return Failure::protocol;  // any other parser error: the answer is not valid HTTP
  }
  return step_failure;
}

// Why a handshake failed, in words an operator can act on: the certificate check's own
// reason, or that the server offers only protocol versions below TLS 1.2.
std::string tls_reason(const error_code& ec, long verify_result) {
  if (verify_result != X509_V_OK) {
    return std::string{" ("} + X509_verify_cert_error_string(verify_result) + ")";
  }
  if (ec.category() == asio::error::get_ssl_category()) {
    const int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
        reason == SSL_R_WRONG_SSL_VERSION || reason == SSL_R_NO_PROTOCOLS_AVAILABLE) {
      return " (the server offers no TLS 1.2 or newer, which gio-exporter requires)";
    }
  }
  return {};
}

std::string seconds_text(std::chrono::seconds value) {
  return std::to_string(value.count()) + " s";
}

Error failure(const std::string& shown, std::string_view step, const error_code& ec,
              Failure step_failure, std::chrono::seconds timeout) {
  const Failure kind = classify(ec, step_failure);
  std::string message = shown + ": " + std::string{step} + ": ";
  if (kind == Failure::timeout) {
    message += "no progress within " + seconds_text(timeout);
  } else {
    message += ec.message();
  }
  return Error{kind, std::move(message)};
}

}  // namespace detail

}  // namespace gio::http
