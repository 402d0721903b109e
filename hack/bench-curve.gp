# Draws the cost curve of `hack/bench --curve …` from its TSV file.
#   gnuplot -e "tsv='results.tsv'; png='curve.png'" hack/bench-curve.gp
set terminal pngcairo size 1500,450 font "sans,10"
set output png
set datafile separator "\t"
set key autotitle columnhead top left
set logscale x
set xlabel "connections (N)"
set grid
set multiplot layout 1,3 title "trackvia-operator cost curve"

set title "convergence and its floors (medians of the runs)"
set ylabel "seconds"
set y2label "convergence ÷ floor"
set key top left Left reverse
set yrange [0:*]
set y2range [0:3]
set y2tics
set ytics nomirror
plot tsv using 1:2 with linespoints title "convergence", \
     tsv using 1:3 with linespoints title "floor (two writes)", \
     tsv using 1:5 with linespoints title "floor with the applies", \
     tsv using 1:13 with linespoints title "cold start", \
     tsv using 1:4 axes x1y2 with linespoints dashtype 2 title "÷ floor (right axis)", \
     tsv using 1:6 axes x1y2 with linespoints dashtype 2 title "÷ floor with the applies (right axis)", \
     tsv using 1:14 axes x1y2 with linespoints dashtype 2 title "cold start ÷ floor (right axis)"

unset y2label
unset y2tics
set ytics mirror
set title "operator memory"
set ylabel "MiB"
set yrange [0:*]
plot tsv using 1:7 with linespoints title "peak RSS", \
     tsv using 1:8 with linespoints title "steady RSS", \
     tsv using 1:15 with linespoints title "cold start peak RSS", \
     64 with lines dashtype 3 title "64 MiB target"

set title "cost per connection"
set ylabel "CPU s per 1,000 connections / requests per connection"
plot tsv using 1:9 with linespoints title "operator CPU s per 1,000", \
     tsv using 1:10 with linespoints title "API requests per connection"
unset multiplot
