// The raw export answers (seed 002): parse_raw_export (all types) and
// parse_raw_export_type (one type). Both must return a value or an error, never throw,
// never echo a link in an error, and agree with what the document says.

#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>

#include "api/raw_export.hpp"
#include "fuzz_check.hpp"

namespace {

namespace json = boost::json;
using gio::api::ExportStatus;
using gio::api::RawExport;

void check_common(const json::value& document, const RawExport& answer) {
  GIO_FUZZ_CHECK(document.is_object(), "a value from a document that is not an object");
  const json::object& object = document.get_object();
  const json::value* status = object.if_contains("status");
  GIO_FUZZ_CHECK(status != nullptr && status->is_string(), "a value without a status string");
  GIO_FUZZ_CHECK(gio::api::to_string(answer.status) == std::string_view{status->get_string()},
                 "status differs from the document's");
  if (answer.status != ExportStatus::finished) {
    GIO_FUZZ_CHECK(answer.links.empty(), "links on an answer that is not FINISHED");
  }
  const json::value* message = object.if_contains("errorMsg");
  if (message != nullptr && message->is_string()) {
    GIO_FUZZ_CHECK(answer.error_message == std::string_view{message->get_string()},
                   "errorMsg not carried over");
  }
}

// An error must not depend on the links (it would quote them): the same document with
// every link replaced must give the very same error. `parse` is the parser under test.
template <typename Parse>
void check_no_link_in(const json::value& document, const std::string& error, Parse parse) {
  if (!document.is_object() || !document.get_object().contains("downloadLinks")) {
    return;
  }
  json::value other = document;
  int next = 0;
  gio::fuzz::replace_strings(other.get_object()["downloadLinks"], next);
  const auto again = parse(json::serialize(other));
  GIO_FUZZ_CHECK(!again && again.error() == error, "an error depends on the links: " + error);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body = gio::fuzz::as_text(data, size);
  const json::value document = gio::fuzz::parse_or_null(body);

  const auto all = gio::api::parse_raw_export(body);
  if (all) {
    check_common(document, *all);
    if (all->status == ExportStatus::finished) {
      const json::object& links = document.get_object().at("downloadLinks").get_object();
      GIO_FUZZ_CHECK(all->links.size() <= links.size(), "more types than the document lists");
      for (const auto& [type, urls] : all->links) {
        const json::value* listed = links.if_contains(type);
        GIO_FUZZ_CHECK(listed != nullptr && listed->is_array(), "a type the document lacks");
        GIO_FUZZ_CHECK(listed->get_array().size() == urls.size(), "links of a type lost");
        for (std::size_t i = 0; i < urls.size(); ++i) {
          GIO_FUZZ_CHECK(listed->get_array()[i].get_string() == urls[i], "a link changed");
        }
      }
    }
  } else {
    GIO_FUZZ_CHECK(!all.error().empty(), "an empty error");
    check_no_link_in(document, all.error(),
                     [](std::string_view text) { return gio::api::parse_raw_export(text); });
  }

  // The one-type endpoint, asked for a fixed type and for whatever the answer echoes
  // (so that the fuzzer reaches the FINISHED path without guessing the type).
  std::vector<std::string> types{"visit"};
  if (document.is_object()) {
    if (const json::value* echo = document.get_object().if_contains("dataType");
        echo != nullptr && echo->is_string()) {
      types.emplace_back(echo->get_string());
    }
  }
  for (const std::string& type : types) {
    const auto one = gio::api::parse_raw_export_type(body, type);
    if (one) {
      check_common(document, *one);
      if (one->status == ExportStatus::finished) {
        GIO_FUZZ_CHECK(one->links.size() == 1 && one->links.begin()->first == type,
                       "a one-type answer must list exactly the type asked for");
        const json::value& listed = document.get_object().at("downloadLinks");
        GIO_FUZZ_CHECK(listed.get_array().size() == one->links.begin()->second.size(),
                       "links lost");
      }
      if (const json::value* echo = document.get_object().if_contains("dataType")) {
        GIO_FUZZ_CHECK(echo->is_string() && echo->get_string() == type,
                       "an answer about another type was accepted");
      }
    } else {
      GIO_FUZZ_CHECK(!one.error().empty(), "an empty error");
      check_no_link_in(document, one.error(), [&](std::string_view text) {
        return gio::api::parse_raw_export_type(text, type);
      });
    }
  }
  return 0;
}
