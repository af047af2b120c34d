# Included by _features.pyx: matchers for the eight features.STRING_PATTERNS regexes.
# Each follows the regex engine step by step (same alternative order, same greedy backtracking,
# same Unicode classes as `re` for str patterns), so the counts equal re.findall's.

# Alternatives in regex order ("python3?" tries "python3" first); NULL-terminated.
cdef extern from *:
    """
    static const char* const FS_SHELL_WORDS[] = {
        "sh", "bash", "zsh", "curl", "wget", "nc", "ncat", "rm", "chmod", "echo", "touch",
        "true", "python3", "python", "perl", "whoami", "uname", "powershell", "cmd.exe", "cmd",
        NULL};
    static const char* const FS_URL_SCHEMES[] = {"https://", "http://", "ftp://", "file://", NULL};
    static const char* const FS_PATH_PREFIXES[] = {
        "/tmp/", "/etc/", "/bin/", "/dev/", "~/", "../", NULL};
    """
    const char** SHELL_WORDS "((const char**)FS_SHELL_WORDS)"
    const char** URL_SCHEMES "((const char**)FS_URL_SCHEMES)"
    const char** PATH_PREFIXES "((const char**)FS_PATH_PREFIXES)"

# The regexes the matchers below implement, in features.STRING_PATTERNS order; features refuses
# to import if its patterns differ, so editing a regex without the matcher cannot go unnoticed.
PATTERN_SOURCES = (
    r"\b(?:sh|bash|zsh|curl|wget|nc|ncat|rm|chmod|echo|touch|true|python3?|perl|whoami|uname"
    r"|powershell|cmd(?:\.exe)?)[ \t]+[-\w/$'\"]|[;&|`]\s*\w|\$\(",
    r"\b(?:https?|ftp|file)://",
    r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b",
    r"(?m)^[A-Za-z0-9+/]{32,}={0,2}$",
    r"(?m)^(?:[0-9a-fA-F]{2}){16,}$",
    r"__import__|\bimport[ \t]+\w|\blambda\b|\bexec\s*\(|\beval\s*\(|\bos\.\w|subprocess",
    r"(?:^|[\s'\"=])(?:/tmp/|/etc/|/bin/|/dev/|~/|\.\./)",
    r"__\w+__",
)


# -- character classes of `re` for str patterns --------------------------------------------------

# Classes of the first 256 code points, filled at import from the same C API `re` uses.
cdef enum:
    C_WORD = 1
    C_DIGIT = 2
    C_SPACE = 4

cdef unsigned char LATIN1[256]


cdef inline bint is_word(ucs4 c) noexcept nogil:
    if c < 256:
        return LATIN1[c] & C_WORD
    return Py_UNICODE_ISALNUM(c)


cdef inline bint is_digit(ucs4 c) noexcept nogil:
    if c < 256:
        return LATIN1[c] & C_DIGIT
    return Py_UNICODE_ISDECIMAL(c)


cdef inline bint is_space(ucs4 c) noexcept nogil:
    if c < 256:
        return LATIN1[c] & C_SPACE
    return Py_UNICODE_ISSPACE(c)


cdef void init_latin1_table() noexcept:
    cdef ucs4 c
    for c in range(256):
        LATIN1[c] = (
            (C_WORD if Py_UNICODE_ISALNUM(c) or c == 95 else 0)
            | (C_DIGIT if Py_UNICODE_ISDECIMAL(c) else 0)
            | (C_SPACE if Py_UNICODE_ISSPACE(c) else 0)
        )


init_latin1_table()


cdef inline bint at_boundary(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    """\\b: a word character on exactly one side of p."""
    cdef bint before = p > 0 and is_word(t[p - 1])
    cdef bint after = p < n and is_word(t[p])
    return before != after


cdef inline bint at_line_start(const ucs4* t, Py_ssize_t p) noexcept nogil:
    """(?m)^ : start of text or after '\\n' (re knows no other line break)."""
    return p == 0 or t[p - 1] == 10


cdef inline bint at_line_end(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    """(?m)$ : end of text or before '\\n'."""
    return p == n or t[p] == 10


cdef inline bint has(const ucs4* t, Py_ssize_t n, Py_ssize_t p, const char* lit) noexcept nogil:
    """The ASCII literal `lit` occurs at p."""
    cdef Py_ssize_t i = 0
    while lit[i] != 0:
        if p + i >= n or t[p + i] != <unsigned char>lit[i]:
            return False
        i += 1
    return True


cdef inline Py_ssize_t skip_blanks(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    """[ \\t]* (greedy)."""
    while p < n and (t[p] == 32 or t[p] == 9):
        p += 1
    return p


cdef inline Py_ssize_t skip_spaces(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    """\\s* (greedy)."""
    while p < n and is_space(t[p]):
        p += 1
    return p


# -- one matcher per pattern: the end of the match starting at p, or -1 --------------------------

cdef Py_ssize_t match_shell(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    # \b(?:words)[ \t]+[-\w/$'"] | [;&|`]\s*\w | \$\(
    cdef ucs4 c = t[p]
    cdef Py_ssize_t q
    cdef int i = 0
    if c == 59 or c == 38 or c == 124 or c == 96:  # ; & | `
        q = skip_spaces(t, n, p + 1)  # \s is never \w, so greedy \s* never gives back
        return q + 1 if q < n and is_word(t[q]) else -1
    if c == 36:  # $
        return p + 2 if p + 1 < n and t[p + 1] == 40 else -1
    if c < 97 or c > 122 or not at_boundary(t, n, p):
        return -1
    while SHELL_WORDS[i] != NULL:  # alternatives in regex order; "python3?" tries "python3" first
        if <unsigned char>SHELL_WORDS[i][0] == c and has(t, n, p, SHELL_WORDS[i]):
            q = p + <Py_ssize_t>strlen(SHELL_WORDS[i])
            if q < n and (t[q] == 32 or t[q] == 9):
                q = skip_blanks(t, n, q)  # blanks are not in the class below: no give-back
                if q < n and (is_word(t[q]) or t[q] == 45 or t[q] == 47 or t[q] == 36
                              or t[q] == 39 or t[q] == 34):
                    return q + 1
        i += 1
    return -1


cdef Py_ssize_t match_literal_list(const ucs4* t, Py_ssize_t n, Py_ssize_t p,
                                   const char** words) noexcept nogil:
    cdef int i = 0
    while words[i] != NULL:
        if has(t, n, p, words[i]):
            return p + <Py_ssize_t>strlen(words[i])
        i += 1
    return -1


cdef Py_ssize_t match_url(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    # \b(?:https?|ftp|file)://
    if (t[p] != 104 and t[p] != 102) or not at_boundary(t, n, p):
        return -1
    return match_literal_list(t, n, p, URL_SCHEMES)


cdef Py_ssize_t match_octets(const ucs4* t, Py_ssize_t n, Py_ssize_t p,
                             int group) noexcept nogil:
    # \d{1,3} (greedy, then fewer), then '.' and the next group, or \b after the fourth
    cdef Py_ssize_t run = 0
    cdef Py_ssize_t take, end
    while run < 3 and p + run < n and is_digit(t[p + run]):
        run += 1
    take = run
    while take >= 1:
        if group == 3:
            if at_boundary(t, n, p + take):
                return p + take
        elif p + take < n and t[p + take] == 46:
            end = match_octets(t, n, p + take + 1, group + 1)
            if end >= 0:
                return end
        take -= 1
    return -1


cdef Py_ssize_t match_ip(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    # \b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b
    if not is_digit(t[p]) or not at_boundary(t, n, p):
        return -1
    return match_octets(t, n, p, 0)


cdef inline bint is_base64(ucs4 c) noexcept nogil:
    return ((c >= 65 and c <= 90) or (c >= 97 and c <= 122) or (c >= 48 and c <= 57)
            or c == 43 or c == 47)


cdef Py_ssize_t match_base64(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    # (?m)^[A-Za-z0-9+/]{32,}={0,2}$ ; a shorter run would leave a class char before '=' or $
    cdef Py_ssize_t q = p
    cdef int pads = 0
    if not at_line_start(t, p):
        return -1
    while q < n and is_base64(t[q]):
        q += 1
    if q - p < 32:
        return -1
    while pads < 2 and q < n and t[q] == 61:
        q += 1
        pads += 1
    return q if at_line_end(t, n, q) else -1


cdef inline bint is_hex(ucs4 c) noexcept nogil:
    return (c >= 48 and c <= 57) or (c >= 97 and c <= 102) or (c >= 65 and c <= 70)


cdef Py_ssize_t match_hex(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    # (?m)^(?:[0-9a-fA-F]{2}){16,}$ ; only the whole run can reach $, and only in pairs
    cdef Py_ssize_t q = p
    if not at_line_start(t, p):
        return -1
    while q < n and is_hex(t[q]):
        q += 1
    if q - p < 32 or (q - p) % 2 or not at_line_end(t, n, q):
        return -1
    return q


cdef Py_ssize_t match_code(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    # __import__|\bimport[ \t]+\w|\blambda\b|\bexec\s*\(|\beval\s*\(|\bos\.\w|subprocess
    cdef Py_ssize_t q
    cdef ucs4 c = t[p]
    if c == 95:
        return p + 10 if has(t, n, p, "__import__") else -1
    if c == 115:
        return p + 10 if has(t, n, p, "subprocess") else -1
    if not at_boundary(t, n, p):
        return -1
    if c == 105 and has(t, n, p, "import"):
        q = p + 6
        if q < n and (t[q] == 32 or t[q] == 9):
            q = skip_blanks(t, n, q)
            if q < n and is_word(t[q]):
                return q + 1
    elif c == 108 and has(t, n, p, "lambda"):
        if at_boundary(t, n, p + 6):
            return p + 6
    elif c == 101 and (has(t, n, p, "exec") or has(t, n, p, "eval")):
        q = skip_spaces(t, n, p + 4)
        if q < n and t[q] == 40:
            return q + 1
    elif c == 111 and has(t, n, p, "os."):
        if p + 3 < n and is_word(t[p + 3]):
            return p + 4
    return -1


cdef Py_ssize_t match_path(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    # (?:^|[\s'"=])(?:/tmp/|/etc/|/bin/|/dev/|~/|\.\./) ; ^ without (?m): start of text only
    cdef Py_ssize_t end
    cdef ucs4 c = t[p]
    if p == 0:
        end = match_literal_list(t, n, p, PATH_PREFIXES)
        if end >= 0:
            return end
    if is_space(c) or c == 39 or c == 34 or c == 61:
        return match_literal_list(t, n, p + 1, PATH_PREFIXES)
    return -1


cdef Py_ssize_t match_dunder(const ucs4* t, Py_ssize_t n, Py_ssize_t p) noexcept nogil:
    # __\w+__ : \w+ is greedy and includes '_', so the match ends at the LAST "__" of the word
    # run that leaves \w+ at least one character
    cdef Py_ssize_t run_end = p + 2
    cdef Py_ssize_t end
    if t[p] != 95 or p + 2 >= n or t[p + 1] != 95 or not is_word(t[p + 2]):
        return -1
    while run_end < n and is_word(t[run_end]):
        run_end += 1
    end = run_end
    while end - 2 >= p + 3:
        if t[end - 1] == 95 and t[end - 2] == 95:
            return end
        end -= 1
    return -1


# Which matchers can start at an ASCII character (a conservative filter: each matcher checks
# everything itself). Bits in STRING_PATTERNS order; base64 and hex start only at a line start.
cdef enum:
    B_SHELL = 1
    B_URL = 2
    B_IP = 4
    B_BASE64 = 8
    B_HEX = 16
    B_CODE = 32
    B_PATH = 64
    B_DUNDER = 128

# START[w][c]: matchers worth calling at a character c < 256 when the previous character is
# (w=1) or is not (w=0) a word character; \b excludes letters and digits after a word character.
cdef unsigned char START[2][256]


cdef void init_start_table() noexcept:
    cdef int c, w
    memset(START, 0, sizeof(START))
    for w in range(2):
        for c in b";&|`$":
            START[w][c] |= B_SHELL
        for c in b"_s":  # __import__, subprocess: no \b
            START[w][c] |= B_CODE
        START[w][95] |= B_DUNDER
        for c in range(256):
            if is_space(c) or c == 39 or c == 34 or c == 61:
                START[w][c] |= B_PATH
    for c in b"bcenprstuwz":
        START[0][c] |= B_SHELL
    for c in b"hf":
        START[0][c] |= B_URL
    for c in b"ileo":
        START[0][c] |= B_CODE
    for c in range(256):
        if is_digit(c):
            START[0][c] |= B_IP


init_start_table()

cdef unsigned int possible_patterns(const ucs4* t, Py_ssize_t n) noexcept nogil:
    """Patterns that can match at all: each needs some ASCII character (all need a literal one)
    or, for base64 and hex, a line of 32 characters. One cheap pass spares most matcher calls
    on texts such as tokenizer vocabularies."""
    cdef unsigned char seen[128]
    cdef Py_ssize_t p, line_start = 0, longest_line = 0
    cdef ucs4 c
    cdef unsigned int enabled = B_CODE  # its literals are letters: no cheap test
    memset(seen, 0, sizeof(seen))
    for p in range(n):
        c = t[p]
        if c < 128:
            seen[c] = 1
            if c == 10:
                longest_line = max(longest_line, p - line_start)
                line_start = p + 1
    longest_line = max(longest_line, n - line_start)
    if (seen[32] or seen[9] or seen[59] or seen[38] or seen[124] or seen[96]
            or (seen[36] and seen[40])):  # blank after a command, ; & | ` or $(
        enabled |= B_SHELL
    if seen[58] and seen[47]:  # "://"
        enabled |= B_URL
    if seen[46]:  # the dots of an address
        enabled |= B_IP
    if longest_line >= 32:
        enabled |= B_BASE64 | B_HEX
    if seen[47]:  # every path prefix has a '/'
        enabled |= B_PATH
    if seen[95]:
        enabled |= B_DUNDER
    return enabled


ctypedef Py_ssize_t (*matcher_t)(const ucs4*, Py_ssize_t, Py_ssize_t) noexcept nogil


cdef void count_all(const ucs4* t, Py_ssize_t n, Py_ssize_t* counts) noexcept nogil:
    """re.findall counts of all eight patterns in one left-to-right pass: each pattern resumes
    after its own previous (never empty) match, exactly as its own findall would."""
    cdef matcher_t[8] match = [
        match_shell, match_url, match_ip, match_base64, match_hex, match_code, match_path,
        match_dunder,
    ]
    cdef Py_ssize_t resume[8]
    cdef Py_ssize_t p, end
    cdef unsigned int bits
    cdef int k
    cdef ucs4 c
    cdef bint after_word = False
    cdef unsigned int enabled = possible_patterns(t, n)
    for k in range(8):
        counts[k] = 0
        resume[k] = 0
    if not enabled:
        return
    for p in range(n):
        c = t[p]
        if c < 256:
            bits = START[after_word][c]
            after_word = LATIN1[c] & C_WORD
        else:
            bits = (B_IP if not after_word and is_digit(c) else 0) | (B_PATH if is_space(c) else 0)
            after_word = Py_UNICODE_ISALNUM(c)
        if p == 0 or t[p - 1] == 10:
            bits |= B_BASE64 | B_HEX | (B_PATH if p == 0 else 0)
        bits &= enabled
        k = 0
        while bits:
            if bits & 1 and p >= resume[k]:
                end = match[k](t, n, p)
                if end >= 0:
                    counts[k] += 1
                    resume[k] = end
            bits >>= 1
            k += 1


def pattern_counts(str text) -> tuple:
    """Non-overlapping match counts of the eight STRING_PATTERNS over `text`."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    cdef vector[ucs4] buf
    cdef Py_ssize_t counts[8]
    buf.resize(n + 1)
    PyUnicode_AsUCS4(text, buf.data(), n + 1, 0)
    count_all(buf.data(), n, counts)
    return tuple([counts[k] for k in range(8)])


# -- the rules engine's pre-filter: does a needle occur in some string, as its regexes see it? ---

# The pre-filter must find every string the engine's regexes (re.IGNORECASE, `\s`) can match, so
# it compares needles with each character's FOLD: " " for every character `\s` matches (tabs,
# newlines, NBSP, the Unicode spaces), the ASCII letter for every character re.IGNORECASE equates
# with one (ASCII capitals, and the four below), the character itself for the rest of ASCII, and
# 0 (in no needle) for everything else. tests/rules/test_prefilter_native_equals_spec.py checks FOLD
# against `re` over every code point; tests/specs/prefilter.py spells the same fold in Python.
FOLDS_TO_ASCII_LETTER = ((0x130, "i"), (0x131, "i"), (0x17F, "s"), (0x212A, "k"))

cdef unsigned char FOLD_LATIN1[256]


cdef void init_fold_table() noexcept:
    cdef int c
    for c in range(256):
        if is_space(c):
            FOLD_LATIN1[c] = 32
        elif 65 <= c <= 90:
            FOLD_LATIN1[c] = c + 32
        elif c < 128:
            FOLD_LATIN1[c] = c
        else:
            FOLD_LATIN1[c] = 0


init_fold_table()


cdef inline unsigned char fold(ucs4 c) noexcept nogil:
    if c < 256:
        return FOLD_LATIN1[c]
    if Py_UNICODE_ISSPACE(c):
        return 32
    if c == 0x130 or c == 0x131:  # dotted capital I, dotless small i
        return 105
    if c == 0x17F:  # long s
        return 115
    if c == 0x212A:  # Kelvin sign
        return 107
    return 0


def folded_code_point(unsigned int c) -> int:
    """FOLD of one code point (for the tests)."""
    return fold(c)


cdef inline unsigned char folded_at(int kind, const void* data, Py_ssize_t n,
                                    Py_ssize_t p) noexcept nogil:
    """FOLD of the character at p; 0 past the end (no needle holds NUL, so 0 matches none)."""
    if p >= n:
        return 0
    if kind == 1:
        return FOLD_LATIN1[(<const unsigned char*>data)[p]]
    return fold(PyUnicode_READ(kind, data, p))


def contains_folded(object strings, tuple needles) -> int:
    """1 when some needle occurs in the FOLD of some string, else 0: a " " in a needle stands
    for any whitespace, a letter for its case variants. Needles must be non-empty ASCII made of
    FOLD's own values (lowercase, blanks only as " ", no NUL), at most 64 of them; none can
    span two strings."""
    # at[i][c]: needles whose character i is c, or that are shorter than i + 1; a position is
    # verified in full only when its first three folded characters pass all three tables.
    cdef unsigned long long at[3][128]
    cdef vector[const char*] words
    cdef vector[Py_ssize_t] sizes
    cdef unsigned long long mask, everyone
    cdef Py_ssize_t n, p, i, k, size
    cdef int kind
    cdef const void* data
    cdef int c
    cdef bint found = False
    cdef list encoded = []
    if len(needles) > 64:
        raise ValueError("at most 64 needles")
    for word in needles:
        if (not isinstance(word, str) or not word or not word.isascii()
                or any(ch == "\0" or fold(ord(ch)) != ord(ch) for ch in word)):
            raise ValueError(f"needle {word!r} is not made of folded ASCII (lowercase, \" \")")
        encoded.append(word.encode("ascii"))
    everyone = (1ULL << len(encoded)) - 1 if encoded else 0
    memset(at, 0, sizeof(at))
    for k, raw in enumerate(encoded):
        words.push_back(<const char*>raw)
        sizes.push_back(len(raw))
        for i in range(3):
            if i < len(raw):
                at[i][<unsigned char>(<const char*>raw)[i]] |= 1ULL << k
            else:
                for c in range(128):
                    at[i][c] |= 1ULL << k
    for s in strings:
        if not isinstance(s, str):
            raise TypeError(f"sequence item: expected str instance, {type(s).__name__} found")
        if found or not everyone:
            continue  # keep checking types, as str.join would
        n = PyUnicode_GET_LENGTH(s)
        kind = PyUnicode_KIND(s)
        data = PyUnicode_DATA(s)
        for p in range(n):
            if kind == 1:  # Latin-1 text (vocabularies): one table look-up per character
                mask = at[0][FOLD_LATIN1[(<const unsigned char*>data)[p]]]
            else:
                mask = at[0][fold(PyUnicode_READ(kind, data, p))]
            if not mask:
                continue
            mask &= at[1][folded_at(kind, data, n, p + 1)] & at[2][folded_at(kind, data, n, p + 2)]
            k = 0
            while mask:
                if mask & 1:
                    size = sizes[k]
                    i = 0
                    while (i < size and folded_at(kind, data, n, p + i)
                           == <unsigned char>words[k][i]):
                        i += 1
                    if i == size:
                        found = True
                        break
                mask >>= 1
                k += 1
            if found:
                break
    return 1 if found else 0
