# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where the report files go (_files/report_files.py): a plain file name, in a directory that is no symbolic link,
belongs to the user writing and that nobody else can write to; refused otherwise, and never changed."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._files.report_files import (
    MAX_NAME,
    ReportFileError,
    ReportFiles,
    check_report_dir,
    check_report_name,
    report_files,
)

ME = os.geteuid()


def tree(tmp_path):
    """A snapshot of everything under ``tmp_path``: path -> (mode, owner, link target): nothing may change."""
    found = {}
    for root, dirs, files in os.walk(tmp_path):
        for name in [*dirs, *files]:
            path = os.path.join(root, name)
            info = os.lstat(path)
            found[path] = (info.st_mode, info.st_uid, os.readlink(path) if os.path.islink(path) else None)
    return found


def private_dir(tmp_path, name="report", mode=0o700):
    path = tmp_path / name
    path.mkdir()
    path.chmod(mode)
    return path


# ---------------------------------------------------------------------------------------------------- the name
@pytest.mark.parametrize(
    "name", ["hardware-oath-tokens", "report", "R1", "2026-01-02T03-04-05Z", "a.b_c-d", "x" * MAX_NAME, "r-"]
)
def test_plain_file_names_are_taken(name):
    assert check_report_name(name) == name


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "the report name is empty"),
        ("../report", "holds a path separator"),
        ("sub/report", "holds a path separator"),
        ("/etc/report", "holds a path separator"),
        ("sub\\report", "holds a path separator"),
        ("..", "holds '..'"),
        ("report..old", "holds '..'"),
        (".", "starts with '.', which would make hidden files"),
        (".report", "starts with '.', which would make hidden files"),
        ("report.", "ends with '.', which would make 'report..json'"),
        ("-report", "must start with a letter or a digit"),
        ("_report", "must start with a letter or a digit"),
        ("my report", "may hold only the letters"),
        ("report:2026", "may hold only the letters"),
        ("rapport-é", "may hold only the letters"),
        ("report\n", "may hold only the letters"),
        ("report\x00", "may hold only the letters"),
        ("x" * (MAX_NAME + 1), f"is {MAX_NAME + 1} characters long; at most {MAX_NAME} are allowed"),
    ],
)
def test_other_names_are_refused(name, problem):
    with pytest.raises(ReportFileError) as info:
        check_report_name(name)
    assert problem in str(info.value)


@pytest.mark.parametrize("name", [None, 42, ["report"]])
def test_a_name_that_is_not_a_string_is_refused(name):
    with pytest.raises(ReportFileError, match="^the report name must be a string, not "):
        check_report_name(name)


def test_a_bad_name_is_refused_before_the_directory_is_looked_at(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(ReportFileError, match="holds a path separator"):
        report_files(str(link), "../x")


# ---------------------------------------------------------------------------------------------------- the directory
def test_a_private_directory_of_ones_own_is_taken(tmp_path):
    path = private_dir(tmp_path)
    assert report_files(str(path), "hardware-oath-tokens") == ReportFiles(
        str(path), True, f"{path}/hardware-oath-tokens.json", f"{path}/hardware-oath-tokens.md"
    )


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o705, 0o711, 0o500])
def test_a_directory_others_may_read_is_taken(tmp_path, mode):
    path = private_dir(tmp_path, mode=mode)
    assert check_report_dir(str(path)) == (str(path), True)
    assert stat.S_IMODE(os.lstat(path).st_mode) == mode  # not tightened


def test_a_missing_directory_is_for_the_caller_to_create(tmp_path):
    before = tree(tmp_path)
    assert check_report_dir(str(tmp_path / "new" / "report")) == (str(tmp_path / "new" / "report"), False)
    assert tree(tmp_path) == before  # nothing created


@pytest.mark.parametrize("mode", [0o770, 0o720, 0o707, 0o702, 0o777, 0o1777, 0o2770])
def test_a_directory_others_may_write_to_is_refused_and_left_as_it_is(tmp_path, mode):
    path = private_dir(tmp_path, mode=mode)
    before = tree(tmp_path)
    with pytest.raises(ReportFileError) as info:
        report_files(str(path), "report")
    message = str(info.value)
    assert message.startswith(f"the report directory {str(path)!r} has mode {mode:04o}: ")
    assert "can write to it" in message
    assert "It is left as it is" in message
    assert ("its group" in message) is bool(mode & 0o020)
    assert ("other users" in message) is bool(mode & 0o002)
    assert tree(tmp_path) == before


def test_a_directory_of_another_user_is_refused_and_left_as_it_is(tmp_path):
    path = private_dir(tmp_path)
    before = tree(tmp_path)
    with pytest.raises(ReportFileError) as info:
        report_files(str(path), "report", euid=ME + 1)
    assert str(info.value).startswith(
        f"the report directory {str(path)!r} belongs to the user with uid {ME}, not to the user writing the report "
        f"(uid {ME + 1})"
    )
    assert tree(tmp_path) == before


@pytest.mark.skipif(ME != 0, reason="only root can give a directory to another user")
def test_a_directory_given_to_another_user_is_refused(tmp_path):
    path = private_dir(tmp_path)
    os.chown(path, 65534, -1)
    with pytest.raises(ReportFileError, match="belongs to the user with uid 65534, not to the user writing the report"):
        report_files(str(path), "report")


@pytest.mark.parametrize("trailing", ["", "/", "//"])
def test_a_symbolic_link_is_refused_even_to_a_private_directory_of_ones_own(tmp_path, trailing):
    target = private_dir(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(target)
    before = tree(tmp_path)
    with pytest.raises(ReportFileError) as info:
        report_files(str(link) + trailing, "report")
    assert str(info.value).startswith(f"the report directory {str(link)!r} is a symbolic link")
    assert tree(tmp_path) == before


def test_a_dangling_symbolic_link_is_refused_not_taken_for_a_missing_directory(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ReportFileError, match="is a symbolic link"):
        check_report_dir(str(link))


def test_a_file_is_refused(tmp_path):
    path = tmp_path / "report"
    path.write_text("")
    with pytest.raises(ReportFileError, match="exists and is not a directory"):
        check_report_dir(str(path))


def test_a_directory_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ReportFileError, match="can't be examined: Not a directory"):
        check_report_dir(str(tmp_path / "file" / "report"))


def test_a_relative_directory_is_taken_from_the_current_directory(tmp_path, monkeypatch):
    private_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert report_files("report", "r").json == f"{tmp_path}/report/r.json"


def test_home_and_variables_are_expanded_as_the_writing_modules_expand_them(tmp_path, monkeypatch):
    private_dir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("REPORTS", str(tmp_path))
    assert check_report_dir("~/report") == (str(tmp_path / "report"), True)
    assert check_report_dir("$REPORTS/report/") == (str(tmp_path / "report"), True)


@pytest.mark.parametrize("path, problem", [("", "is empty"), ("  ", "is empty"), ("a\x00b", "holds a NUL character")])
def test_an_empty_or_impossible_directory_is_refused(path, problem):
    with pytest.raises(ReportFileError, match=problem):
        check_report_dir(path)


@pytest.mark.parametrize("path", [None, 42, ["report"]])
def test_a_directory_that_is_not_a_string_is_refused(path):
    with pytest.raises(ReportFileError, match="^the report directory must be a string"):
        check_report_dir(path)


def test_the_error_is_a_value_error():
    assert issubclass(ReportFileError, ValueError)
