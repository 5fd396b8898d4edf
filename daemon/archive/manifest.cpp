#include <boost/json.hpp>

#include "archive/archive.hpp"

namespace gio::archive {
namespace {

namespace json = boost::json;

std::string json_string(std::string_view text) {
  return json::serialize(json::string_view{text});
}

const json::string* string_field(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value == nullptr ? nullptr : value->if_string();
}

std::optional<std::uint64_t> unsigned_field(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) {
    return std::nullopt;
  }
  if (const auto* u = value->if_uint64()) {
    return *u;
  }
  if (const auto* i = value->if_int64(); i != nullptr && *i >= 0) {
    return static_cast<std::uint64_t>(*i);
  }
  return std::nullopt;
}

// An optional string field into `target` (left as it is when absent); false when the
// key is there with another type.
bool optional_string(const json::object& object, std::string_view key, std::string& target) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) {
    return true;
  }
  const json::string* text = value->if_string();
  if (text == nullptr) {
    return false;
  }
  target.assign(text->data(), text->size());
  return true;
}

// A file's optional counts; false when a key is there with the wrong shape.
bool read_counts(const json::object& fields, ManifestFile& file) {
  if (const json::value* rows = fields.if_contains("rows"); rows != nullptr && !rows->is_null()) {
    file.rows = unsigned_field(fields, "rows");
    if (!file.rows) {
      return false;
    }
  }
  if (const json::value* columns = fields.if_contains("columns"); columns != nullptr) {
    if (!columns->is_array()) {
      return false;
    }
    for (const json::value& column : columns->get_array()) {
      const json::string* name = column.if_string();
      if (name == nullptr) {
        return false;
      }
      file.columns.emplace_back(name->data(), name->size());
    }
  }
  if (const json::value* hours = fields.if_contains("rows_by_hour"); hours != nullptr) {
    if (!hours->is_array() || hours->get_array().size() != 24) {
      return false;
    }
    for (const json::value& hour : hours->get_array()) {
      if (const auto* u = hour.if_uint64()) {
        file.rows_by_hour.push_back(*u);
      } else if (const auto* i = hour.if_int64(); i != nullptr && *i >= 0) {
        file.rows_by_hour.push_back(static_cast<std::uint64_t>(*i));
      } else {
        return false;
      }
    }
  }
  return true;
}

// `text` with each byte that starts no well-formed UTF-8 sequence replaced by U+FFFD:
// the counter keeps a header's raw bytes, and JSON (parse_manifest included) must be
// UTF-8, or our own manifest would read as damaged.
std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t length = utf8_sequence_length(text, pos);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++pos;
    } else {
      out.append(text, pos, length);
      pos += length;
    }
  }
  return out;
}

void write_counts(const ManifestFile& file, std::string& out) {
  if (!file.rows) {
    return;
  }
  out += ", \"rows\": " + std::to_string(*file.rows) + ", \"columns\": [";
  for (std::size_t i = 0; i < file.columns.size(); ++i) {
    out += (i == 0 ? "" : ", ") + json_string(valid_utf8(file.columns[i]));
  }
  out += "]";
  if (!file.rows_by_hour.empty()) {
    out += ", \"rows_by_hour\": [";
    for (std::size_t i = 0; i < file.rows_by_hour.size(); ++i) {
      out += (i == 0 ? "" : ", ") + std::to_string(file.rows_by_hour[i]);
    }
    out += "]";
  }
}

}  // namespace

std::optional<std::uint64_t> total_rows(const Manifest& manifest) {
  std::uint64_t total = 0;
  for (const ManifestFile& file : manifest.files) {
    if (!file.rows) {
      return std::nullopt;
    }
    total += *file.rows;
  }
  return total;
}

Manifest make_manifest(std::string_view job, std::string_view data_type, const Slot& slot,
                       Instant archived_at, std::vector<ManifestFile> files) {
  return {.job = std::string{job},
          .data_type = std::string{data_type},
          .slot = slot.name(),
          .export_date = slot.export_date(),
          .archived_at = archived_at,
          .files = std::move(files)};
}

std::string to_json(const Manifest& manifest) {
  // Written by hand rather than serialize(object) so that people (and diffs) see one
  // field per line in a fixed order.
  std::string out = "{\n";
  out += "  \"job\": " + json_string(manifest.job) + ",\n";
  out += "  \"data_type\": " + json_string(manifest.data_type) + ",\n";
  out += "  \"slot\": " + json_string(manifest.slot) + ",\n";
  out += "  \"export_date\": " + json_string(manifest.export_date) + ",\n";
  out += "  \"archived_at\": " + json_string(format_utc(manifest.archived_at)) + ",\n";
  // A reader checks the partition at a glance: the total, or why there is none.
  if (const auto total = total_rows(manifest)) {
    out += "  \"rows\": " + std::to_string(*total) + ",\n";
  } else {
    out += "  \"rows\": null,\n  \"rows_note\": " +
           json_string(manifest.rows_note.empty() ? kRowsNotCounted : manifest.rows_note) + ",\n";
  }
  // A sink's fields only when set: a local manifest stays byte-identical to earlier ones.
  if (!manifest.remote_checksum.empty()) {
    out += "  \"remote_checksum\": " + json_string(manifest.remote_checksum) + ",\n";
  }
  out += "  \"files\": [";
  for (std::size_t i = 0; i < manifest.files.size(); ++i) {
    const ManifestFile& file = manifest.files[i];
    out += i == 0 ? "\n" : ",\n";
    out += "    {\"name\": " + json_string(file.name) +
           ", \"bytes\": " + std::to_string(file.bytes) +
           ", \"sha256\": " + json_string(file.sha256);
    if (!file.remote_hash.empty()) {
      out += ", \"remote_hash\": " + json_string(file.remote_hash);
    }
    write_counts(file, out);
    out += "}";
  }
  out += manifest.files.empty() ? "]\n" : "\n  ]\n";
  out += "}\n";
  return out;
}

std::optional<Manifest> parse_manifest(std::string_view text) {
  boost::system::error_code error;
  const json::value root = json::parse(json::string_view{text.data(), text.size()}, error);
  if (error || !root.is_object()) {
    return std::nullopt;
  }
  const json::object& object = root.get_object();

  Manifest manifest;
  const std::pair<std::string_view, std::string*> strings[] = {
      {"job", &manifest.job},
      {"data_type", &manifest.data_type},
      {"slot", &manifest.slot},
      {"export_date", &manifest.export_date}};
  for (const auto& [key, target] : strings) {
    const json::string* value = string_field(object, key);
    if (value == nullptr) {
      return std::nullopt;
    }
    *target = std::string{value->data(), value->size()};
  }

  const json::string* archived_at = string_field(object, "archived_at");
  if (archived_at == nullptr) {
    return std::nullopt;
  }
  const auto instant = parse_utc(std::string_view{archived_at->data(), archived_at->size()});
  if (!instant) {
    return std::nullopt;
  }
  manifest.archived_at = *instant;
  if (!optional_string(object, "remote_checksum", manifest.remote_checksum) ||
      !optional_string(object, "rows_note", manifest.rows_note)) {
    return std::nullopt;
  }
  // The total is derived from the files (total_rows), but a wrong shape is still refused.
  if (const json::value* total = object.if_contains("rows");
      total != nullptr && !total->is_null() && !unsigned_field(object, "rows")) {
    return std::nullopt;
  }
  if (manifest.rows_note == kRowsNotCounted) {
    manifest.rows_note.clear();  // the generic note stands for none given: a round trip is exact
  }

  const json::value* files = object.if_contains("files");
  if (files == nullptr || !files->is_array()) {
    return std::nullopt;
  }
  for (const json::value& entry : files->get_array()) {
    if (!entry.is_object()) {
      return std::nullopt;
    }
    const json::object& fields = entry.get_object();
    const json::string* name = string_field(fields, "name");
    const json::string* sha256 = string_field(fields, "sha256");
    const auto bytes = unsigned_field(fields, "bytes");
    if (name == nullptr || sha256 == nullptr || !bytes ||
        !is_safe_file_name(std::string_view{name->data(), name->size()})) {
      return std::nullopt;
    }
    ManifestFile file{.name = std::string{name->data(), name->size()},
                      .bytes = *bytes,
                      .sha256 = std::string{sha256->data(), sha256->size()}};
    if (!optional_string(fields, "remote_hash", file.remote_hash) || !read_counts(fields, file)) {
      return std::nullopt;
    }
    manifest.files.push_back(std::move(file));
  }
  return manifest;
}

}  // namespace gio::archive
