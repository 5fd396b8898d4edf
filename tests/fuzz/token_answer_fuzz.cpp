// The answer of POST /auth/token (signed-code auth): parse_token_answer returns the
// code or a problem, never throws, and a problem never quotes the code (a secret).

#include <cstddef>
#include <cstdint>

#include "api/auth.hpp"
#include "fuzz_check.hpp"

namespace json = boost::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body = gio::fuzz::as_text(data, size);
  const json::value document = gio::fuzz::parse_or_null(body);
  const json::object* object = document.if_object();
  const json::value* status = object != nullptr ? object->if_contains("status") : nullptr;
  const json::value* code = object != nullptr ? object->if_contains("code") : nullptr;

  const auto answer = gio::api::parse_token_answer(body);
  if (answer) {
    GIO_FUZZ_CHECK(status != nullptr && status->is_string() && status->get_string() == "success",
                   "a code from an answer that is not a success");
    GIO_FUZZ_CHECK(code != nullptr && code->is_string() && code->get_string() == *answer,
                   "the code is not the answer's");
    GIO_FUZZ_CHECK(!answer->empty(), "an empty code");
    return 0;
  }
  const auto& problem = answer.error();
  GIO_FUZZ_CHECK(!problem.message.empty(), "a problem without a message");
  GIO_FUZZ_CHECK(problem.message.size() <= 200, "an unbounded message: " + problem.message);
  // refused means a well-formed answer that says no: only then is asking again futile.
  const bool says_no =
      status != nullptr && status->is_string() && status->get_string() != "success";
  GIO_FUZZ_CHECK(problem.refused == says_no, "refused differs from the answer's status");
  // The message must not depend on the code (it would quote a secret).
  if (code != nullptr && code->is_string() && !code->get_string().empty()) {
    json::value other = document;
    other.get_object()["code"] = "\x01other";
    const auto again = gio::api::parse_token_answer(json::serialize(other));
    GIO_FUZZ_CHECK(!again && again.error().message == problem.message,
                   "the message depends on the code");
  }
  return 0;
}
