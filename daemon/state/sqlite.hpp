#pragma once

// A thin RAII layer over SQLite's C API: a connection, prepared statements that
// take bound values only, one execution of a statement at a time, and
// transactions that roll back unless committed. Errors are StateError with
// SQLite's extended result code; destructors never throw.

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "state/state_error.hpp"

namespace gio::state::sqlite {

// How a Database opens its file (see Database's constructor).
enum class Access {
  read_write,           // created when missing (mode 0600)
  read_write_existing,  // as read_write, but a missing file is an error, not a new one
  read_only,            // an existing file, through its WAL when one exists
  immutable,            // an existing file as it is on disk: no locks, no -wal, no -shm
};

class Database {
 public:
  // Opens the file. read_write creates an empty database when it is missing; the
  // read-only accesses never create, write or lock-and-recover anything but SQLite's
  // shared -shm index (read_only; it stays untouched when the caller cannot write it),
  // and a read_only connection never checkpoints on close. SQLite reads the file
  // lazily: a missing WAL, a damaged or a foreign file is only reported by the first
  // statement.
  explicit Database(const std::filesystem::path& path, Access access = Access::read_write);

  Database(Database&&) noexcept = default;
  Database& operator=(Database&&) noexcept = default;

  // Runs SQL text that takes no values (DDL, PRAGMA, BEGIN/COMMIT); several
  // statements separated by ';' are allowed.
  void exec(const std::string& sql);
  void set_busy_timeout(std::chrono::milliseconds timeout);
  // Rows changed by the last INSERT, UPDATE or DELETE on this connection.
  int changes() const;

  sqlite3* handle() const { return db_.get(); }

  // Throws StateError with `context`, the connection's last message and `code`.
  [[noreturn]] void fail(std::string_view context, int code) const;

 private:
  struct Close {
    void operator()(sqlite3* db) const noexcept;
  };
  std::unique_ptr<sqlite3, Close> db_;
};

// A compiled statement, prepared once and executed many times through Query.
// Its Database must outlive it and stay where it is (the statement keeps its address).
class Statement {
 public:
  Statement(Database& db, std::string_view sql);

  Statement(Statement&&) noexcept = default;
  Statement& operator=(Statement&&) noexcept = default;

  sqlite3_stmt* handle() const { return stmt_.get(); }
  Database& database() const { return *db_; }

 private:
  struct Finalize {
    void operator()(sqlite3_stmt* stmt) const noexcept;
  };
  Database* db_;
  std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
};

// One execution of a Statement. It starts from fresh bindings and resets the
// statement when it ends: a statement left mid-result would keep a read
// transaction (and its WAL snapshot) open on the connection.
class Query {
 public:
  explicit Query(Statement& statement);
  // Binds `values` to parameters 1, 2, ... in order.
  template <class... Values>
  Query(Statement& statement, const Values&... values) : Query(statement) {
    int index = 0;
    (bind(++index, values), ...);
  }
  ~Query();

  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind(int index, std::int64_t value);
  Query& bind(int index, int value) { return bind(index, std::int64_t{value}); }
  Query& bind(int index, std::string_view value);
  Query& bind(int index, const std::string& value) { return bind(index, std::string_view{value}); }
  Query& bind(int index, const char* value) { return bind(index, std::string_view{value}); }
  Query& bind(int index, std::nullopt_t);
  template <class T>
  Query& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind(index, std::nullopt);
  }

  // Advances to the next row: true when one is ready, false when done.
  bool step();
  // Runs a statement that returns no rows (or whose rows are not wanted).
  void run();

  bool is_null(int column) const;
  std::int64_t get_int64(int column) const;
  std::string get_text(int column) const;

 private:
  Statement& statement_;
};

enum class Begin {
  deferred,   // takes locks when first needed; for consistent multi-statement reads
  immediate,  // takes the write lock now, so waiting happens on the busy timeout
              // instead of failing with SQLITE_BUSY when a read upgrades to a write
};

// What a Transaction opened inside another one is.
enum class Nested {
  savepoint,  // a SAVEPOINT: undone on its own when destroyed uncommitted
  // Nothing: its changes are the outer transaction's. For a call of one statement (SQLite
  // undoes a failed statement by itself) or one whose caller ends the outer transaction on
  // any failure. A savepoint copies each page it changes to a journal first: with
  // thousands of calls in one batch (planning 200 jobs at start) that cost a third of it.
  join,
};

// BEGIN on construction; ROLLBACK on destruction unless commit() succeeded.
// Inside another transaction it is a SAVEPOINT instead (`mode` is then the outer
// one's): commit() releases it into the outer transaction, which alone makes it
// durable; destruction without commit() undoes only its own changes. With Nested::join
// it is nothing there: commit() and destruction do nothing.
class Transaction {
 public:
  explicit Transaction(Database& db, Begin mode = Begin::immediate,
                       Nested nested = Nested::savepoint);
  ~Transaction();

  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit();

 private:
  Database& db_;
  bool nested_;
  bool joined_ = false;
  bool open_ = true;
};

}  // namespace gio::state::sqlite
