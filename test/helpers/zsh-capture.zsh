# Prints the matches zsh's completion system offers for a command line, one per line.
# usage: zsh -f zsh-capture.zsh <work-dir> <completion-script> <line>
# An interactive zsh runs on a pseudo-terminal (zsh/zpty) with compinit and the script loaded;
# the line and a TAB bound to complete-word are typed into it, and a compadd wrapper prints every
# match the completion functions add (after Valodim's zsh-capture-completion, MIT).
zmodload zsh/zpty || { print -u2 'zsh/zpty is missing'; exit 3 }
zpty z zsh -f -i
init=$1/.capture-init.zsh
cat > $init <<'INIT'
PROMPT=
autoload -U compinit && compinit -u -D
zstyle ':completion:*' list-grouped false
zstyle ':completion:*' insert-tab false
compadd() {
  # Only calls that add matches are captured; those that only query (-O/-A/-D) pass through.
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __hits
  builtin compadd -A __hits "$@"
  (( $#__hits )) && print -rl -- ${(@)__hits/#/<<match>>}
  builtin compadd "$@"
}
capture-done() { print -r -- '<<done>>'; exit }
comppostfuncs=(capture-done)
bindkey '^I' complete-word
print -r -- '<<rea''dy>>'
INIT
zpty -w z "source ${(q)init}; source ${(q)2}"
while zpty -r z out; do [[ $out == *'<<ready>>'* ]] && break; done
zpty -w -n z "$3"$'\t'
while zpty -r z out; do
  for l in ${(f)out}; do
    [[ $l == *'<<done>>'* ]] && { zpty -d z; exit 0 }
    [[ $l == *'<<match>>'* ]] && print -r -- ${${l#*<<match>>}%$'\r'}
  done
done
exit 4
