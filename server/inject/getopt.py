"""DJB's getopt (sgetopt.c, subgetopt.c), as qmail-inject and sendmail parse argv.

Options stop at the first argument not starting with "-", at a lone "-"
(which stays an argument) and after a word starting "--" (which is dropped). An option
letter followed by ":" in the spec takes the rest of its word or the next
word. An unknown letter or a missing argument is a :class:`GetoptError`
whose message is what sgetopt prints (``NAME: illegal option -- x``).
"""

from __future__ import annotations

from collections.abc import Iterator


class GetoptError(Exception):
    def __init__(self, progname: str, letter: str, missing: bool) -> None:
        what = "option requires an argument" if missing else "illegal option"
        super().__init__(f"{progname}: {what} -- {letter}")
        self.letter = letter
        self.missing = missing


def progname(argv0: str) -> str:
    """sgetopt's optprogname: argv[0] after its last "/"."""
    return argv0.rsplit("/", 1)[-1]


class Getopt:
    """Iterate over ``(letter, argument or None)``; then :attr:`rest` is the operands."""

    def __init__(self, argv: list[str], spec: str) -> None:
        self.argv = argv
        self.spec = spec
        self.index = 1
        self.pos = 0
        self.name = progname(argv[0]) if argv else ""

    @property
    def rest(self) -> list[str]:
        return self.argv[self.index :]

    def skip_word(self) -> None:
        """Drop what is left of the current word (sendmail's -E and -J)."""
        if self.pos:
            self.pos = len(self.argv[self.index])

    def _takes_argument(self, letter: str) -> bool | None:
        at = self.spec.find(letter)
        if letter == ":" or at < 0:
            return None
        return self.spec[at + 1 : at + 2] == ":"

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        while True:
            if self.index >= len(self.argv):
                return
            word = self.argv[self.index]
            if self.pos and self.pos >= len(word):
                self.index += 1
                self.pos = 0
                if self.index >= len(self.argv):
                    return
                word = self.argv[self.index]
            if not self.pos:
                if not word.startswith("-") or word == "-":
                    return
                if word.startswith("--"):  # "--" and, as in subgetopt.c, "--x"
                    self.index += 1
                    return
                self.pos = 1
            yield self._next(word)

    def _next(self, word: str) -> tuple[str, str | None]:
        letter = word[self.pos]
        self.pos += 1
        takes = self._takes_argument(letter)
        if takes is None:
            raise GetoptError(self.name, letter, missing=False)
        if not takes:
            return letter, None
        argument = word[self.pos :]
        self.index += 1
        self.pos = 0
        if not argument:
            if self.index >= len(self.argv):
                raise GetoptError(self.name, letter, missing=True)
            argument = self.argv[self.index]
            self.index += 1
        return letter, argument
