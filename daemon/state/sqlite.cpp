#include "state/sqlite.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "state/state_store.hpp"

namespace gio::state::sqlite {
namespace {

std::string describe(std::string_view context, std::string_view message, int code) {
  std::string text{context};
  text += ": ";
  text += message;
  text += " (SQLite code ";
  text += std::to_string(code);
  text += ')';
  return text;
}

// The database holds the cached auth code, so a new file is private from its
// first byte. SQLite gives the -wal and -shm files the mode of the database file,
// so they follow. An existing file keeps the mode its owner chose.
void create_private(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return;
    }
    throw StateError(
        describe("cannot open " + path.string(), std::strerror(errno), SQLITE_CANTOPEN),
        SQLITE_CANTOPEN);
  }
  // The umask may only have narrowed 0600, but make the mode exact.
  const int chmod_result = ::fchmod(fd, 0600);
  const int chmod_errno = errno;
  ::close(fd);
  if (chmod_result != 0) {
    throw StateError(
        describe("cannot open " + path.string(), std::strerror(chmod_errno), SQLITE_CANTOPEN),
        SQLITE_CANTOPEN);
  }
}

// A URI naming `path` (made absolute) for sqlite3_open_v2 with SQLITE_OPEN_URI: the
// only way to pass `immutable`. "file://" plus an absolute path keeps the authority
// empty however the path starts; every byte outside the unreserved set is escaped, so
// '?', '#' and '%' in a folder name stay part of the path.
std::string file_uri(const std::filesystem::path& path, std::string_view query) {
  std::string uri = "file://";
  for (const unsigned char c : std::filesystem::absolute(path).string()) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum || c == '/' || c == '.' || c == '_' || c == '-' || c == '~') {
      uri += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      uri += '%';
      uri += kHex[c >> 4];
      uri += kHex[c & 0xf];
    }
  }
  uri += '?';
  uri += query;
  return uri;
}

}  // namespace

void Database::Close::operator()(sqlite3* db) const noexcept {
  // close_v2 never fails for a valid handle: it defers the close until the last
  // statement is finalized.
  sqlite3_close_v2(db);
}

Database::Database(const std::filesystem::path& path, Access access) {
  constexpr int kCommon = SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_FULLMUTEX;
  std::string name = path.string();
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | kCommon;
  if (access == Access::read_write) {
    create_private(path);
  } else if (access == Access::read_write_existing) {
    flags = SQLITE_OPEN_READWRITE | kCommon;
  } else {
    // mode=ro: SQLITE_OPEN_READONLY alone would still let a missing file be made.
    name = file_uri(path, access == Access::immutable ? "mode=ro&immutable=1" : "mode=ro");
    flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | kCommon;
  }
  sqlite3* raw = nullptr;
  const int code = sqlite3_open_v2(name.c_str(), &raw, flags, nullptr);
  db_.reset(raw);  // a handle comes back even on failure, and must be closed
  if (code != SQLITE_OK) {
    const char* message = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(code);
    throw StateError(describe("cannot open " + path.string(), message, code), code);
  }
  sqlite3_extended_result_codes(raw, 1);
  if (access == Access::read_only) {
    // The last connection to close checkpoints the WAL into the database file and
    // deletes the -wal and -shm: a reader must leave that to the daemon.
    sqlite3_db_config(raw, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  }
}

void Database::exec(const std::string& sql) {
  const int code = sqlite3_exec(handle(), sql.c_str(), nullptr, nullptr, nullptr);
  if (code != SQLITE_OK) {
    fail("cannot run SQL", code);
  }
}

void Database::set_busy_timeout(std::chrono::milliseconds timeout) {
  const auto ms =
      std::min<std::chrono::milliseconds::rep>(timeout.count(), std::numeric_limits<int>::max());
  const int code = sqlite3_busy_timeout(handle(), static_cast<int>(ms));
  if (code != SQLITE_OK) {
    fail("cannot set the busy timeout", code);
  }
}

int Database::changes() const {
  return sqlite3_changes(handle());
}

void Database::fail(std::string_view context, int code) const {
  throw StateError(describe(context, sqlite3_errmsg(handle()), code), code);
}

void Statement::Finalize::operator()(sqlite3_stmt* stmt) const noexcept {
  sqlite3_finalize(stmt);
}

Statement::Statement(Database& db, std::string_view sql) : db_(&db) {
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  const int code = sqlite3_prepare_v3(db.handle(), sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &raw, &tail);
  stmt_.reset(raw);
  if (code != SQLITE_OK) {
    db.fail("cannot prepare a statement", code);
  }
  if (raw == nullptr) {
    throw StateError("cannot prepare a statement: the SQL text is empty", SQLITE_MISUSE);
  }
  // Anything after the first statement would be silently ignored.
  if (std::string_view{tail, sql.data() + sql.size()}.find_first_not_of(" \t\r\n;") !=
      std::string_view::npos) {
    throw StateError("cannot prepare a statement: the SQL text holds more than one", SQLITE_MISUSE);
  }
}

Query::Query(Statement& statement) : statement_(statement) {
  // A cached statement may still hold the bindings of its previous use.
  sqlite3_reset(statement_.handle());
  sqlite3_clear_bindings(statement_.handle());
}

Query::~Query() {
  // reset() repeats the last step's error code, which has been reported already.
  sqlite3_reset(statement_.handle());
}

Query& Query::bind(int index, std::int64_t value) {
  const int code = sqlite3_bind_int64(statement_.handle(), index, value);
  if (code != SQLITE_OK) {
    statement_.database().fail("cannot bind a value", code);
  }
  return *this;
}

Query& Query::bind(int index, std::string_view value) {
  const int code = sqlite3_bind_text64(statement_.handle(), index, value.data(), value.size(),
                                       SQLITE_TRANSIENT, SQLITE_UTF8);
  if (code != SQLITE_OK) {
    statement_.database().fail("cannot bind a value", code);
  }
  return *this;
}

Query& Query::bind(int index, std::nullopt_t) {
  const int code = sqlite3_bind_null(statement_.handle(), index);
  if (code != SQLITE_OK) {
    statement_.database().fail("cannot bind a value", code);
  }
  return *this;
}

bool Query::step() {
  const int code = sqlite3_step(statement_.handle());
  if (code == SQLITE_ROW) {
    return true;
  }
  if (code == SQLITE_DONE) {
    return false;
  }
  statement_.database().fail("cannot run a statement", code);
}

void Query::run() {
  while (step()) {
  }
}

bool Query::is_null(int column) const {
  return sqlite3_column_type(statement_.handle(), column) == SQLITE_NULL;
}

std::int64_t Query::get_int64(int column) const {
  return sqlite3_column_int64(statement_.handle(), column);
}

std::string Query::get_text(int column) const {
  const auto* text = sqlite3_column_text(statement_.handle(), column);
  const int size = sqlite3_column_bytes(statement_.handle(), column);
  if (text == nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(size));
}

// Savepoints nest by name; one name serves every level, since RELEASE and ROLLBACK TO
// act on the innermost savepoint of that name.
Transaction::Transaction(Database& db, Begin mode, Nested nested)
    : db_(db), nested_(sqlite3_get_autocommit(db.handle()) == 0) {
  if (nested_ && nested == Nested::join) {
    joined_ = true;  // the outer transaction commits or rolls back
    open_ = false;
  } else if (nested_) {
    db_.exec("SAVEPOINT nested");
  } else {
    db_.exec(mode == Begin::immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
  }
}

Transaction::~Transaction() {
  if (open_) {
    // A failed COMMIT or a statement error may already have ended the
    // transaction; ROLLBACK then fails harmlessly, and a destructor must not throw.
    sqlite3_exec(db_.handle(), nested_ ? "ROLLBACK TO nested; RELEASE nested" : "ROLLBACK", nullptr,
                 nullptr, nullptr);
  }
}

void Transaction::commit() {
  if (joined_) {
    return;
  }
  db_.exec(nested_ ? "RELEASE nested" : "COMMIT");
  open_ = false;
}

}  // namespace gio::state::sqlite

namespace gio::state {

std::string_view sqlite_version() {
  return sqlite3_libversion();
}

}  // namespace gio::state
