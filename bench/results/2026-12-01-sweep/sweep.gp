# Drawn by bench/chart.py from sweep.dat (run in this directory: gnuplot sweep.gp)
set terminal pngcairo noenhanced size 1400,560 font 'DejaVu Sans,11'
set output 'sweep.png'
set multiplot layout 1,2 title '4 KiB random read on /dev/zram0, one job, medians'
set logscale x 2
set xtics (1, 4, 16, 32, 128)
set xrange [0.8:160]
set xlabel 'queue depth'
set grid
set key bottom right opaque box
set ylabel 'IOPS (thousands)'
set yrange [0:*]
set title 'IOPS'
plot 'sweep.dat' using 1:($2/1000) with linespoints lw 2 pt 7 lc rgb '#1b9e77' title 'aioblk-perf', 'sweep.dat' using 1:($4/1000) with linespoints lw 2 pt 7 lc rgb '#d95f02' title 'fio libaio', 'sweep.dat' using 1:($6/1000) with linespoints lw 2 pt 7 lc rgb '#e6ab02' title 'fio libaio batched', 'sweep.dat' using 1:($8/1000) with linespoints lw 2 pt 7 lc rgb '#7570b3' title 'fio io_uring', 'sweep.dat' using 1:($10/1000) with linespoints lw 2 pt 7 lc rgb '#e7298a' title 'fio + aioblk engine'
set ylabel 'p99 latency (us)'
set key top left opaque box
set logscale y
set yrange [*:*]
set title 'p99 latency (log scale)'
plot 'sweep.dat' using 1:3 with linespoints lw 2 pt 7 lc rgb '#1b9e77' title 'aioblk-perf', 'sweep.dat' using 1:5 with linespoints lw 2 pt 7 lc rgb '#d95f02' title 'fio libaio', 'sweep.dat' using 1:7 with linespoints lw 2 pt 7 lc rgb '#e6ab02' title 'fio libaio batched', 'sweep.dat' using 1:9 with linespoints lw 2 pt 7 lc rgb '#7570b3' title 'fio io_uring', 'sweep.dat' using 1:11 with linespoints lw 2 pt 7 lc rgb '#e7298a' title 'fio + aioblk engine'
unset multiplot
