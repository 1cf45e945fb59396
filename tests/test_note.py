"""C2SP signed notes and checkpoints, checked against other implementations' examples."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dataauth.audit.note import (
    COSIGNATURE_V1,
    Checkpoint,
    Note,
    NoteError,
    Signer,
    Verifier,
)

# The example key and note of Go's golang.org/x/mod/sumdb/note (note_test.go), which
# every other implementation of the format (Rust, TypeScript) also tests against.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG = (
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_NOTE = GO_TEXT + "\n" + GO_SIG

# The checkpoint of c2sp.org/tlog-checkpoint's example.
C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)


def test_the_go_key_parses_and_its_note_verifies() -> None:
    verifier = Verifier.from_vkey(GO_VKEY)
    assert verifier.name == "PeterNeumann" and verifier.vkey() == GO_VKEY
    note = Note.parse(GO_NOTE.encode())
    assert note.text == GO_TEXT
    assert note.open([verifier]) == [verifier]
    assert note.serialise() == GO_NOTE.encode()


def test_signing_with_the_go_key_writes_the_go_note_byte_for_byte() -> None:
    signer = Signer.from_skey(GO_SKEY)
    assert signer.verifier.vkey() == GO_VKEY
    assert signer.line(GO_TEXT.encode()) == GO_SIG


def test_a_changed_text_fails_and_an_unknown_key_alone_is_not_trusted() -> None:
    verifier = Verifier.from_vkey(GO_VKEY)
    forged = Note.parse(GO_NOTE.replace("cryptography", "cryptographY").encode())
    with pytest.raises(NoteError, match="does not verify"):
        forged.open([verifier])
    other = Signer("PeterNeumann", Ed25519PrivateKey.generate()).verifier
    with pytest.raises(NoteError, match="no signature from a known key"):
        Note.parse(GO_NOTE.encode()).open([other])


@pytest.mark.parametrize(
    "vkey",
    [
        GO_VKEY[:-1],
        GO_VKEY.replace("c74f20a3", "c74f20a4"),
        GO_VKEY.replace("PeterNeumann", "Peter Neumann"),
        GO_VKEY.replace("+ARpc", "+AhRpc"),
        "PeterNeumann+c74f20a3",
    ],
)
def test_mangled_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(NoteError):
        Verifier.from_vkey(vkey)


@pytest.mark.parametrize(
    "data",
    [
        GO_TEXT,  # no signatures
        GO_TEXT + "\n",  # a blank line and nothing after it
        GO_TEXT + "\n" + GO_SIG.replace("\u2014", "-"),
        GO_TEXT + "\n" + GO_SIG.rstrip("\n"),  # no final newline
        GO_TEXT.replace("\n", "\r\n") + "\n" + GO_SIG,
        GO_TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",  # shorter than a key ID
    ],
)
def test_malformed_notes_are_refused(data: str) -> None:
    with pytest.raises(NoteError):
        Note.parse(data.encode())


def test_the_c2sp_checkpoint_example_parses_and_round_trips() -> None:
    checkpoint = Checkpoint.parse(C2SP_CHECKPOINT)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert base64.b64encode(checkpoint.root).decode() == (
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    )
    assert checkpoint.text() == C2SP_CHECKPOINT


@pytest.mark.parametrize(
    "text",
    ["origin\n01\n" + "A" * 43 + "=\n", "origin\n1\nAAAA\n", "origin\n1\n", "o\n1\n\n" + "x\n"],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


def test_a_cosignature_signs_time_and_checkpoint_and_only_they_verify() -> None:
    witness = Signer("witness.example/w1", Ed25519PrivateKey.generate(), COSIGNATURE_V1)
    log = Signer("example.com/behind-the-sofa", Ed25519PrivateKey.generate())
    note = Checkpoint.parse(C2SP_CHECKPOINT).sign(log)
    cosignature = witness.line(note.text.encode(), 1679315147)
    cosigned = Note.parse((note.serialise().decode() + cosignature).encode())
    assert cosigned.open([log.verifier, witness.verifier]) == [log.verifier, witness.verifier]
    assert cosigned.signatures[1].timestamp() == 1679315147
    # the witness key as a vkey of type 0x04 round-trips
    assert Verifier.from_vkey(witness.verifier.vkey()) == witness.verifier
    # the same bytes under the 0x01 type are a different key, so they are ignored
    as_note_key = Verifier(witness.name, 0x01, witness.verifier.public_key)
    with pytest.raises(NoteError, match="no signature from a known key"):
        Note(cosigned.text, cosigned.signatures[1:]).open([as_note_key])
