// The YAML layer's own problems, in plain words at the line to look at (parse_support.hpp).
//
// yaml-cpp reports a syntax error in its own terms ("end of map not found") at the
// token where it gave up, which is often a line after the mistake or the end of the
// file. The text is first read with yaml-cpp's event parser, which says where each map
// and list opens: the error is then explained from the structure still open, the
// line at fault and the line above it. yaml-cpp 0.7 also accepts a quote that is never
// closed, reading on through the following keys to the next quote or the end of the
// file; such a value is caught here as an unclosed quote instead of surfacing later as
// an unknown kind or a missing key.

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <functional>
#include <sstream>

#include "config/parse_support.hpp"

namespace gio::config::parsing {
namespace {

// A map or a list that the event parser has opened and not yet closed.
struct Open {
  bool map = false;
  bool flow = false;  // {...} or [...]
  YAML::Mark mark;
};

class Events final : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> documents;
  std::vector<Open> open;
  std::vector<YAML::Mark> quoted;  // where each quoted scalar starts

  void OnDocumentStart(const YAML::Mark& mark) override {
    documents.push_back(mark);
    open.clear();
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t,
                const std::string&) override {
    // yaml-cpp tags a quoted scalar "!" and a plain one "?" when the text gives none.
    if (tag == "!") {
      quoted.push_back(mark);
    }
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value style) override {
    open.push_back({false, style == YAML::EmitterStyle::Flow, mark});
  }
  void OnSequenceEnd() override { pop(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value style) override {
    open.push_back({true, style == YAML::EmitterStyle::Flow, mark});
  }
  void OnMapEnd() override { pop(); }

 private:
  void pop() {
    if (!open.empty()) {
      open.pop_back();
    }
  }
};

// The text cut into lines (without their line breaks), to look around a mark.
class Lines {
 public:
  explicit Lines(std::string_view text) {
    // yaml-cpp's columns do not count a byte order mark.
    std::size_t start = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;
    while (start <= text.size()) {
      const std::size_t end = text.find('\n', start);
      std::string_view line = text.substr(start, end == std::string_view::npos ? end : end - start);
      if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
      }
      lines_.push_back(line);
      if (end == std::string_view::npos) {
        break;
      }
      start = end + 1;
    }
  }

  std::string_view at(int line) const {
    return line >= 0 && static_cast<std::size_t>(line) < lines_.size() ? lines_[line]
                                                                       : std::string_view{};
  }
  int count() const { return static_cast<int>(lines_.size()); }

  // The nearest line above `line` that holds more than blanks or a comment, or -1.
  int content_above(int line) const {
    for (int i = line - 1; i >= 0; --i) {
      const std::string_view text = at(i);
      const auto first = text.find_first_not_of(" \t");
      if (first != std::string_view::npos && text[first] != '#') {
        return i;
      }
    }
    return -1;
  }

 private:
  std::vector<std::string_view> lines_;
};

int indent_of(std::string_view line) {
  const auto first = line.find_first_not_of(' ');
  return static_cast<int>(first == std::string_view::npos ? line.size() : first);
}

bool tab_in_indent(std::string_view line) {
  const auto first = line.find_first_not_of(" \t");
  return line.substr(0, first).find('\t') != std::string_view::npos;
}

// Where the first ": " (or a ':' that ends the line) is, outside quotes; npos if none.
std::size_t key_colon(std::string_view line) {
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote != 0) {
      quote = c == quote ? 0 : quote;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#' && (i == 0 || line[i - 1] == ' ')) {
      return std::string_view::npos;
    } else if (c == ':' && (i + 1 == line.size() || line[i + 1] == ' ')) {
      return i;
    }
  }
  return std::string_view::npos;
}

// Where the text of a line starts, past its indentation and any "- " list markers.
std::size_t after_markers(std::string_view line) {
  std::size_t i = line.find_first_not_of(' ');
  while (i != std::string_view::npos && i + 1 < line.size() && line[i] == '-' &&
         line[i + 1] == ' ') {
    i = line.find_first_not_of(' ', i + 1);
  }
  return i == std::string_view::npos ? line.size() : i;
}

// `-name: a`, meant as a list entry, is a key named "-name".
bool missing_space_after_dash(std::string_view line) {
  const std::size_t text = after_markers(line);
  return text + 1 < line.size() && line[text] == '-' && line[text + 1] != '-' &&
         line[text + 1] != ' ';
}
constexpr const char* kMissingSpaceAfterDash =
    "a list entry needs a space after '-' (write '- name', not '-name')";

YAML::Mark mark_at(int line, int column) {
  YAML::Mark mark;
  mark.line = line;
  mark.column = column;
  return mark;
}

std::string spaces(int n) {
  return std::to_string(n) + (n == 1 ? " space" : " spaces");
}

std::string line_number(const YAML::Mark& mark) {
  return "line " + std::to_string(mark.line + 1);
}

// What the explanations look at.
struct Context {
  const Lines& lines;
  YAML::Mark mark;
  std::string_view message;  // yaml-cpp's
  const std::vector<Open>& open;

  std::string_view line() const { return lines.at(mark.line); }
  const Open* innermost(bool flow) const {
    for (auto it = open.rbegin(); it != open.rend(); ++it) {
      if (it->flow == flow) {
        return &*it;
      }
    }
    return nullptr;
  }
};

// "end of sequence flow not found", "end of map flow not found": yaml-cpp gives up where
// the next thing that cannot be in the list is, often the next key or the end of the
// file. The '[' or '{' that was never closed is the place to fix.
SyntaxProblem unclosed_flow(const Context& context, bool map) {
  const char* what = map ? "a map opened with '{'" : "a list opened with '['";
  const char* close = map ? "'}'" : "']'";
  const Open* open = context.innermost(/*flow=*/true);
  if (open == nullptr || open->map != map) {
    return {context.mark, std::string(what) + " is not closed: add the missing " + close};
  }
  std::string message = std::string(what) + " here is not closed: add the missing " + close;
  if (context.mark.line > open->mark.line) {
    message += " (YAML read on to " + line_number(context.mark) + " looking for it)";
  }
  return {open->mark, std::move(message)};
}

// "end of map not found", "end of sequence not found": a line that does not line up
// with the block map or list still open above it.
SyntaxProblem misaligned(const Context& context) {
  const std::string_view line = context.line();
  const Open* open = context.innermost(/*flow=*/false);
  const YAML::Mark start = mark_at(context.mark.line, indent_of(line));
  if (open == nullptr) {
    return {start, "this line does not fit the structure above it: check its indentation"};
  }
  const std::string where = " that starts at " + line_number(open->mark);
  if (line.find_first_not_of(" \t") == std::string_view::npos) {
    // Nothing to point at where yaml-cpp stopped: the structure is the place to look.
    return {open->mark, std::string(open->map ? "the map" : "the list") +
                            " that starts here does not end where it should: check the "
                            "indentation of its lines"};
  }
  if (missing_space_after_dash(line)) {
    return {start, kMissingSpaceAfterDash};
  }
  const bool entry =
      line.substr(start.column).starts_with("- ") || line.substr(start.column) == "-";
  if (entry && open->map) {
    return {start, "a list entry ('- ') among the keys of the map" + where +
                       ": a list must be the value of a key, on the lines below it and indented "
                       "more than the key"};
  }
  if (!open->map && start.column == open->mark.column) {
    return {start, "every entry of the list" + where + " must start with '- '"};
  }
  std::string message = "this line is indented by " + spaces(start.column) +
                        ", which lines up with nothing above it: " +
                        (open->map ? "the keys of the map" : "the entries of the list") + where +
                        " are indented by " + std::to_string(open->mark.column);
  const int above = context.lines.content_above(context.mark.line);
  if (above >= 0) {
    const int above_indent = static_cast<int>(after_markers(context.lines.at(above)));
    if (above_indent != open->mark.column && above_indent != start.column) {
      message += ", line " + std::to_string(above + 1) + " by " + std::to_string(above_indent);
    }
  }
  return {start, message + ". Keys of one map, and entries of one list, must line up"};
}

// "illegal map value": a ':' where no key can start. Most often the line above is not
// the `key: value` it looks like, or this line is indented under a key that already
// has a value, or a value holds ": ".
SyntaxProblem stray_colon(const Context& context) {
  const std::string_view line = context.line();
  const std::size_t first_colon = key_colon(line);
  if (first_colon != std::string_view::npos &&
      first_colon < static_cast<std::size_t>(context.mark.column)) {
    return {context.mark,
            "a second ': ' on this line: YAML reads 'key: a: b' as a map inside a value. "
            "If the value contains ': ', put it in quotes"};
  }
  const int above = context.lines.content_above(context.mark.line);
  if (above >= 0) {
    const std::string_view previous = context.lines.at(above);
    const std::size_t text = after_markers(previous);
    if (missing_space_after_dash(previous)) {
      return {mark_at(above, static_cast<int>(text)), kMissingSpaceAfterDash};
    }
    if (key_colon(previous) == std::string_view::npos) {
      const std::size_t colon = previous.find(':', text);
      if (colon != std::string_view::npos) {
        return {mark_at(above, static_cast<int>(colon)),
                "a key needs a space after its ':' (write 'kind: raw', not 'kind:raw'); "
                "without it YAML reads the line as text that runs on into the next one"};
      }
      return {mark_at(above, static_cast<int>(text)),
              "this line is not 'key: value' (it has no ':'), so YAML reads it as text that "
              "runs on into the next one: add the ':' or remove the line"};
    }
    const std::size_t colon = key_colon(previous);
    const bool has_value = previous.find_first_not_of(' ', colon + 1) != std::string_view::npos;
    if (has_value && indent_of(line) > static_cast<int>(text)) {
      return {mark_at(context.mark.line, indent_of(line)),
              "this line is indented more than the key on line " + std::to_string(above + 1) +
                  ", which already has a value: line it up with the keys above it"};
    }
  }
  return {context.mark,
          "a ':' where no key can start: check the indentation of this line, and put values "
          "that contain ': ' in quotes"};
}

std::string character_at(const Context& context) {
  const std::string_view line = context.line();
  const auto column = static_cast<std::size_t>(context.mark.column);
  return column < line.size() ? in_quotes(line.substr(column, 1)) : std::string{"this character"};
}

// yaml-cpp's messages (YAML::ErrorMsg) and what they mean in a config file. Those left
// out are rare in a hand-written file and are shown as yaml-cpp words them.
struct Translation {
  std::string_view yaml_cpp;  // the message, or its start for those followed by a detail
  std::function<SyntaxProblem(const Context&)> explain;
};

const Translation kTranslations[] = {
    {YAML::ErrorMsg::END_OF_SEQ_FLOW, [](const Context& c) { return unclosed_flow(c, false); }},
    {YAML::ErrorMsg::END_OF_MAP_FLOW, [](const Context& c) { return unclosed_flow(c, true); }},
    {YAML::ErrorMsg::END_OF_MAP, misaligned},
    {YAML::ErrorMsg::END_OF_SEQ, misaligned},
    {YAML::ErrorMsg::MAP_VALUE, stray_colon},
    {YAML::ErrorMsg::TAB_IN_INDENTATION,
     [](const Context& c) {
       return SyntaxProblem{mark_at(c.mark.line, 0),
                            "a tab in the indentation: YAML indents with spaces only"};
     }},
    {YAML::ErrorMsg::BLOCK_ENTRY,
     [](const Context& c) {
       return SyntaxProblem{c.mark,
                            "a list entry ('- ') cannot start here: put each entry on a line of "
                            "its own below its key, indented more than the key, or write the "
                            "list as [a, b]"};
     }},
    {YAML::ErrorMsg::FLOW_END,
     [](const Context& c) {
       return SyntaxProblem{
           c.mark, character_at(c) + " closes nothing: remove it, or put the value in quotes"};
     }},
    {YAML::ErrorMsg::UNKNOWN_TOKEN,
     [](const Context& c) {
       return SyntaxProblem{c.mark, "a value cannot start with " + character_at(c) +
                                        " in YAML (it is reserved): put the value in quotes"};
     }},
    {YAML::ErrorMsg::INVALID_ESCAPE,
     [](const Context& c) {
       // yaml-cpp's mark is past the escape; the backslash is two characters back.
       YAML::Mark backslash = c.mark;
       backslash.column = std::max(0, backslash.column - 2);
       return SyntaxProblem{backslash,
                            "an unknown escape ('\\" +
                                std::string(c.message.substr(
                                    std::string_view{YAML::ErrorMsg::INVALID_ESCAPE}.size())) +
                                "') in a double-quoted value: write '\\\\' for a backslash, or "
                                "use single quotes, in which '\\' is an ordinary character"};
     }},
    {YAML::ErrorMsg::INVALID_HEX,
     [](const Context& c) {
       return SyntaxProblem{c.mark,
                            "a bad '\\x', '\\u' or '\\U' escape in a double-quoted value: write "
                            "'\\\\' for a backslash, or use single quotes"};
     }},
    {YAML::ErrorMsg::UNKNOWN_ANCHOR,
     [](const Context& c) {
       return SyntaxProblem{c.mark,
                            "'*' refers to an anchor ('&name') defined above, and there is "
                            "none: put the value in quotes if the '*' is part of it"};
     }},
    {YAML::ErrorMsg::ALIAS_NOT_FOUND,
     [](const Context& c) {
       return SyntaxProblem{c.mark,
                            "'*' must be followed by an anchor's name: put the value in "
                            "quotes if the '*' is part of it"};
     }},
    {YAML::ErrorMsg::ANCHOR_NOT_FOUND,
     [](const Context& c) {
       return SyntaxProblem{c.mark,
                            "'&' must be followed by an anchor's name: put the value in "
                            "quotes if the '&' is part of it"};
     }},
};

// The structure errors that a tab in the indentation causes in yaml-cpp.
bool caused_by_tab(const Context& context) {
  for (const char* message : {YAML::ErrorMsg::END_OF_MAP, YAML::ErrorMsg::END_OF_SEQ,
                              YAML::ErrorMsg::MAP_VALUE, YAML::ErrorMsg::BLOCK_ENTRY}) {
    if (context.message == message) {
      return tab_in_indent(context.line());
    }
  }
  return false;
}

SyntaxProblem explain(const Lines& lines, const YAML::Mark& mark, std::string_view message,
                      const std::vector<Open>& open) {
  const Context context{lines, mark, message, open};
  if (caused_by_tab(context)) {
    return {mark_at(mark.line, 0), "a tab in the indentation: YAML indents with spaces only"};
  }
  for (const Translation& translation : kTranslations) {
    if (message.starts_with(translation.yaml_cpp)) {
      return translation.explain(context);
    }
  }
  return {mark, "YAML syntax error: " + std::string(message)};
}

// Where the quote that starts at `open` closes, as an offset, or npos.
std::size_t closing_quote(std::string_view text, std::size_t open) {
  const char quote = text[open];
  for (std::size_t i = open + 1; i < text.size(); ++i) {
    if (quote == '"' && text[i] == '\\') {
      ++i;
    } else if (text[i] == quote) {
      if (quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
        ++i;  // '' is a quote inside single quotes
      } else {
        return i;
      }
    }
  }
  return std::string_view::npos;
}

// A quoted value that runs to the end of the file, or whose next lines are indented no
// more than its key, was meant to end on its own line. (A strict YAML parser refuses
// both; yaml-cpp 0.7 reads on.)
std::optional<SyntaxProblem> unclosed_quote(std::string_view text, const Lines& lines,
                                            const YAML::Mark& mark) {
  const std::string_view line = lines.at(mark.line);
  const auto column = static_cast<std::size_t>(mark.column);
  if (column >= line.size() || (line[column] != '"' && line[column] != '\'')) {
    return std::nullopt;  // not where yaml-cpp said (a byte order mark, say): no guess
  }
  const std::string quote(1, line[column]);
  const std::size_t close =
      closing_quote(text, static_cast<std::size_t>(line.data() - text.data()) + column);
  if (close == std::string_view::npos) {
    return SyntaxProblem{mark, "unclosed quote: the " + quote +
                                   " here is never closed, so YAML reads the rest of the file "
                                   "into this value: add the closing " +
                                   quote};
  }
  // The column its next lines must be indented past: its key's, for a value.
  const std::size_t colon = key_colon(line);
  const int owner = colon != std::string_view::npos && colon < column
                        ? static_cast<int>(after_markers(line))
                        : indent_of(line);
  for (int number = mark.line + 1; number < lines.count(); ++number) {
    const std::string_view next = lines.at(number);
    if (static_cast<std::size_t>(next.data() - text.data()) > close) {
      break;
    }
    if (next.find_first_not_of(" \t") != std::string_view::npos && indent_of(next) <= owner) {
      return SyntaxProblem{mark, "unclosed quote: the " + quote +
                                     " here is not closed on its line, so YAML reads on into "
                                     "line " +
                                     std::to_string(number + 1) + ": add the closing " + quote};
    }
  }
  return std::nullopt;
}

}  // namespace

SyntaxCheck check_syntax(const std::string& text) {
  SyntaxCheck check;
  const Lines lines(text);
  Events events;
  std::istringstream input{text};
  YAML::Parser parser{input};
  std::optional<SyntaxProblem> error;
  try {
    // yaml-cpp 0.7's LoadAll can loop until memory runs out on some malformed input
    // (found by fuzzing: a 16-byte file), so documents are counted here, two at most,
    // and only the first is loaded.
    if (parser.HandleNextDocument(events) && parser.HandleNextDocument(events) &&
        events.documents.size() > 1) {
      check.second_document = events.documents[1];
    }
  } catch (const YAML::Exception& exception) {
    error = explain(lines, exception.mark, exception.msg, events.open);
  }
  // A quote left open is the cause of whatever goes wrong after it.
  for (const YAML::Mark& mark : events.quoted) {
    if (auto quote = unclosed_quote(text, lines, mark)) {
      check.error = std::move(quote);
      return check;
    }
  }
  check.error = std::move(error);
  return check;
}

SyntaxProblem explain_yaml_error(const std::string& text, const YAML::Exception& error) {
  return explain(Lines(text), error.mark, error.msg, {});
}

}  // namespace gio::config::parsing
