#include "api/auth.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>
#include <stdexcept>

namespace gio::api {
namespace json = boost::json;

namespace {

// application/x-www-form-urlencoded value: unreserved characters as they are, the rest
// as %XX. UIDs, ids, digits and hex signatures pass unchanged, so the body carries
// exactly the text that was signed.
std::string form_encode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
        (byte >= '0' && byte <= '9') || byte == '-' || byte == '_' || byte == '.' || byte == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0x0F]);
    }
  }
  return out;
}

}  // namespace

std::string to_text(const CachedCode& code) {
  return json::serialize(json::object{{"code", code.code},
                                      {"client_id", code.client_id},
                                      {"obtained_at", to_unix(code.obtained_at)}});
}

std::optional<CachedCode> cached_code_from_text(std::string_view text) {
  boost::system::error_code ec;
  const json::value document = json::parse(text, ec);
  const json::object* object = ec ? nullptr : document.if_object();
  if (object == nullptr) {
    return std::nullopt;
  }
  const json::value* code = object->if_contains("code");
  const json::value* client_id = object->if_contains("client_id");
  const json::value* obtained_at = object->if_contains("obtained_at");
  if (code == nullptr || !code->is_string() || code->get_string().empty() || client_id == nullptr ||
      !client_id->is_string() || obtained_at == nullptr || !obtained_at->is_int64()) {
    return std::nullopt;
  }
  return CachedCode{.code = std::string{code->get_string()},
                    .client_id = std::string{client_id->get_string()},
                    .obtained_at = from_unix(obtained_at->get_int64())};
}

bool needs_renewal(const CachedCode& code, std::string_view client_id, Instant now) {
  if (code.client_id != client_id || code.obtained_at > now) {
    return true;
  }
  return now - code.obtained_at >= kCodeLifetime - kCodeRenewBefore;
}

std::string token_signature(std::string_view private_key, std::string_view project_uid,
                            std::string_view ai, std::int64_t tm_ms) {
  const std::string message = "POST\n" + std::string{kTokenPath} +
                              "\nproject=" + std::string{project_uid} + "&ai=" + std::string{ai} +
                              "&tm=" + std::to_string(tm_ms);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), private_key.data(), static_cast<int>(private_key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest,
           &length) == nullptr) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0x0F]);
  }
  return hex;
}

TokenRequest make_token_request(const config::Project& project, std::int64_t tm_ms) {
  const std::string signature =
      token_signature(project.auth.private_key.reveal(), project.project_uid, project.ai, tm_ms);
  TokenRequest request;
  request.headers = {
      {.name = "X-Client-Id", .value = project.auth.client_id},
      {.name = "Content-Type", .value = "application/x-www-form-urlencoded"},
      {.name = "Accept", .value = "application/json"},
  };
  request.body = "project=" + form_encode(project.project_uid) + "&ai=" + form_encode(project.ai) +
                 "&tm=" + std::to_string(tm_ms) + "&auth=" + signature;
  return request;
}

boost::system::result<std::string, TokenAnswerProblem> parse_token_answer(std::string_view body) {
  boost::system::error_code ec;
  const json::value document = json::parse(body, ec);
  if (ec) {
    return TokenAnswerProblem{.message = "the answer is not JSON (" + ec.message() + ")"};
  }
  const json::object* object = document.if_object();
  if (object == nullptr) {
    return TokenAnswerProblem{.message = "the answer is not a JSON object"};
  }
  const json::value* status = object->if_contains("status");
  if (status == nullptr || !status->is_string()) {
    return TokenAnswerProblem{.message = "the answer has no \"status\" string"};
  }
  if (status->get_string() != "success") {
    // The status is the vendor's word, not a secret; capped in case it is not a word.
    return TokenAnswerProblem{
        .refused = true,
        .message = "the answer's status is \"" +
                   std::string{std::string_view{status->get_string()}.substr(0, 40)} + "\""};
  }
  const json::value* code = object->if_contains("code");
  if (code == nullptr || !code->is_string() || code->get_string().empty()) {
    return TokenAnswerProblem{.message = "a \"success\" answer without a \"code\" string"};
  }
  return std::string{code->get_string()};
}

}  // namespace gio::api
